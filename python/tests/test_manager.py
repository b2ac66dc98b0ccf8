"""WebSocketClientManager and QuickStartClient as the seed uses them."""

import pytest

import argus
from argus.websocket_client import (
    ConnectionConfig,
    ConnectionState,
    QuickStartClient,
    SubscriptionConfig,
    WebSocketClient,
    WebSocketClientManager,
)
from conftest import wait_until


async def test_manager_creates_reports_and_closes(server):
    manager = WebSocketClientManager()
    client1 = manager.create_client("client1", ConnectionConfig(server.url))
    client2 = manager.create_client("client2", ConnectionConfig(server.url))
    assert isinstance(client1, WebSocketClient) and client1 is not client2
    with pytest.raises(ValueError, match="^client_id"):
        manager.create_client("client1", ConnectionConfig(server.url))
    assert manager.get_client("client2") is client2
    for i, client in enumerate((client1, client2)):
        assert await client.connect()
        await client.subscribe(f"sub_{i}", SubscriptionConfig(symbols=["AAPL"], data_types=["price"]))

    stats = await manager.get_all_stats()
    assert sorted(stats) == ["client1", "client2"]
    assert all(s["state"] == "connected" and s["subscriptions_count"] == 1 for s in stats.values())

    await manager.close_all()
    assert client1.state is ConnectionState.DISCONNECTED
    assert client2.state is ConnectionState.DISCONNECTED
    assert await manager.get_all_stats() == {}


async def test_quickstart_create_and_subscribe_stocks(server):
    client = await QuickStartClient.create(server.url)
    assert client.state is ConnectionState.DISCONNECTED
    other = []
    client.add_message_handler("price", other.append)
    stock_data = []
    # subscribe_stocks connects when needed.
    sub_id = await QuickStartClient.subscribe_stocks(client, ["AAPL", "GOOGL", "MSFT"], stock_data.append)
    assert client.state is ConnectionState.CONNECTED
    assert sub_id.startswith("stocks-")
    await client.subscribe("mine", SubscriptionConfig(["NVDA"], ["price"]))
    await wait_until(lambda: {"price", "volume"} <= {d["type"] for d in stock_data} and any(d["sub"] == "mine" for d in other))
    assert {d["sub"] for d in stock_data} == {sub_id}
    assert {d["symbol"] for d in stock_data} <= {"AAPL", "GOOGL", "MSFT"}
    await client.disconnect()


async def test_quickstart_with_a_key():
    with argus.Server(api_keys=["api_key"]) as server:
        client = await QuickStartClient.create(server.url, "api_key")
        assert client.config.api_key == "api_key"
        assert await client.connect()
        await client.disconnect()
