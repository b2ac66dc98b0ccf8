"""ConnectionConfig, SubscriptionConfig and ConnectionState as the seed writes them."""

import dataclasses

import pytest

from argus.websocket_client import (
    ConnectionConfig,
    ConnectionState,
    SubscriptionConfig,
    WebSocketClient,
)


def test_connection_config_has_the_seeds_fields_and_defaults():
    config = ConnectionConfig(url="ws://localhost:8000/ws")
    assert [f.name for f in dataclasses.fields(config)] == [
        "url",
        "api_key",
        "max_reconnect_attempts",
        "reconnect_delay",
        "heartbeat_interval",
        "timeout",
        "max_subscriptions",
    ]
    assert config.api_key is None
    assert config.max_reconnect_attempts == 5
    assert config.reconnect_delay == 1.0
    assert config.heartbeat_interval == 30
    assert config.timeout == 10
    assert config.max_subscriptions == 100


def test_connection_config_takes_keywords_and_positions():
    config = ConnectionConfig(
        url="ws://localhost:8000/ws",
        api_key="your_api_key",
        max_reconnect_attempts=5,
        reconnect_delay=1.0,
        heartbeat_interval=30,
        timeout=10,
        max_subscriptions=100,
    )
    assert config.api_key == "your_api_key"
    positional = ConnectionConfig("ws://server1.com/ws", "key1")
    assert (positional.url, positional.api_key) == ("ws://server1.com/ws", "key1")


def test_the_seeds_three_configurations():
    production = ConnectionConfig(
        url="wss://api.example.com/ws/v1",
        api_key="your_production_api_key",
        max_reconnect_attempts=10,
        reconnect_delay=2.0,
        heartbeat_interval=20,
        timeout=15,
        max_subscriptions=1000,
    )
    assert ConnectionConfig.production("wss://api.example.com/ws/v1", "your_production_api_key") == production
    development = ConnectionConfig(
        url="ws://localhost:8000/ws",
        max_reconnect_attempts=3,
        reconnect_delay=1.0,
        heartbeat_interval=30,
        timeout=10,
        max_subscriptions=50,
    )
    assert ConnectionConfig.development("ws://localhost:8000/ws") == development
    trading = ConnectionConfig(
        url="wss://api.trading.com/ws",
        api_key="trading_api_key",
        max_reconnect_attempts=20,
        reconnect_delay=0.5,
        heartbeat_interval=10,
        timeout=5,
        max_subscriptions=5000,
    )
    assert ConnectionConfig.high_frequency("wss://api.trading.com/ws", "trading_api_key") == trading


@pytest.mark.parametrize(
    "fields, error, field",
    [
        (dict(url=""), ValueError, "url"),
        (dict(url="http://localhost:8000/ws"), ValueError, "url"),
        (dict(url=42), TypeError, "url"),
        (dict(api_key="has space"), ValueError, "api_key"),
        (dict(api_key=7), TypeError, "api_key"),
        (dict(max_reconnect_attempts=-1), ValueError, "max_reconnect_attempts"),
        (dict(max_reconnect_attempts="5"), TypeError, "max_reconnect_attempts"),
        (dict(reconnect_delay=-1.0), ValueError, "reconnect_delay"),
        (dict(reconnect_delay=float("nan")), ValueError, "reconnect_delay"),
        (dict(heartbeat_interval=0), ValueError, "heartbeat_interval"),
        (dict(timeout=0), ValueError, "timeout"),
        (dict(timeout="10"), TypeError, "timeout"),
        (dict(max_subscriptions=0), ValueError, "max_subscriptions"),
        (dict(max_subscriptions=True), TypeError, "max_subscriptions"),
    ],
)
def test_bad_connection_fields_are_named(fields, error, field):
    arguments = dict(url="ws://localhost:8000/ws")
    arguments.update(fields)
    with pytest.raises(error) as raised:
        ConnectionConfig(**arguments)
    assert str(raised.value).startswith(field), raised.value


def test_the_api_key_never_shows():
    config = ConnectionConfig("wss://feed.example/ws", "sk-live-123456")
    client = WebSocketClient(config)
    for text in (repr(config), str(config), repr(client)):
        assert "sk-live-123456" not in text, text
    assert "<redacted>" in repr(config)


def test_subscription_config_has_the_seeds_fields_and_defaults():
    config = SubscriptionConfig(symbols=["AAPL", "GOOGL"], data_types=["price"])
    assert [f.name for f in dataclasses.fields(config)] == [
        "symbols",
        "data_types",
        "update_frequency",
        "filters",
    ]
    assert config.update_frequency == "realtime"
    assert config.filters is None
    full = SubscriptionConfig(
        symbols=["AAPL", "GOOGL"],
        data_types=["price", "volume", "orderbook"],
        update_frequency="realtime",
        filters={"min_price": 100, "max_price": 1000},
    )
    assert full.filters == {"min_price": 100, "max_price": 1000}
    for frequency in ("realtime", "1s", "5s", "1m"):
        SubscriptionConfig(["AAPL"], ["price"], frequency)


@pytest.mark.parametrize(
    "fields, error, field",
    [
        (dict(symbols=[]), ValueError, "symbols"),
        (dict(symbols="AAPL"), TypeError, "symbols"),
        (dict(symbols=["AA PL"]), ValueError, "symbols"),
        (dict(symbols=[1]), TypeError, "symbols"),
        (dict(data_types=[]), ValueError, "data_types"),
        (dict(data_types=["trades"]), ValueError, "data_types"),
        (dict(update_frequency="2s"), ValueError, "update_frequency"),
        (dict(update_frequency=1), TypeError, "update_frequency"),
        (dict(filters={"min_price": 10, "max_price": 1}), ValueError, "filters"),
        (dict(filters={"min_volume": 10}), ValueError, "filters"),
        (dict(filters={"min_price": "10"}), TypeError, "filters"),
        (dict(filters=[1]), TypeError, "filters"),
    ],
)
def test_bad_subscription_fields_are_named(fields, error, field):
    arguments = dict(symbols=["AAPL"], data_types=["price"])
    arguments.update(fields)
    with pytest.raises(error) as raised:
        SubscriptionConfig(**arguments)
    assert str(raised.value).startswith(field), raised.value


def test_connection_state_values_are_the_seeds():
    assert {s.name: s.value for s in ConnectionState} == {
        "DISCONNECTED": "disconnected",
        "CONNECTING": "connecting",
        "CONNECTED": "connected",
        "RECONNECTING": "reconnecting",
        "ERROR": "error",
    }


def test_client_options_are_checked():
    config = ConnectionConfig("ws://localhost:8000/ws")
    with pytest.raises(ValueError, match="^slow_consumer"):
        WebSocketClient(config, slow_consumer="block")
    with pytest.raises(ValueError, match="^queue_capacity"):
        WebSocketClient(config, queue_capacity=0)
    with pytest.raises(TypeError, match="^config"):
        WebSocketClient("ws://localhost:8000/ws")
    client = WebSocketClient(config)
    assert client.state is ConnectionState.DISCONNECTED
    with pytest.raises(ValueError, match="^data_type"):
        client.add_message_handler("trades", print)
    with pytest.raises(TypeError, match="^handler"):
        client.add_message_handler("price", "not callable")
