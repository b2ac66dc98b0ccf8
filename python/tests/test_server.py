"""argus.Server: the reference server in-process."""

import re

import pytest

import argus
from argus.websocket_client import SubscriptionConfig, WebSocketClient
from conftest import collect_until, data, fast_config


async def test_a_server_in_process_serves_faults_and_stops():
    server = argus.Server(tick_interval=0.005, symbols=["AAPL", "MSFT"])
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/ws", server.url)
    assert server.url.endswith(f":{server.port}/ws") and server.running
    client = WebSocketClient(fast_config(server.url))
    events = client.events()
    try:
        assert await client.connect()
        await client.subscribe("main", SubscriptionConfig(["AAPL"], ["price"]))
        await collect_until(events, lambda seen: len(data(seen)) >= 5)

        assert server.disconnect_all(4000, "slow consumer") == 1
        seen = await collect_until(events, lambda s: any(e["type"] == "resumed" for e in s))
        closed = next(e for e in seen if e["type"] == "disconnected")
        assert (closed["kind"], closed["code"]) == ("server_closed", 4000)

        stats = server.stats()
        assert stats["connections_accepted"] == 2 and stats["live_connections"] == 1
        with pytest.raises(ValueError, match="^symbols"):
            await client.subscribe("bad", SubscriptionConfig(["AA PL"], ["price"]))

        server.shutdown()
        seen = await collect_until(events, lambda s: any(e["type"] == "disconnected" for e in s))
        closed = next(e for e in seen if e["type"] == "disconnected")
        assert closed.get("code") == 1001
    finally:
        await client.disconnect()
    assert not server.running
    server.shutdown()  # again: nothing happens
    with pytest.raises(RuntimeError):
        server.stats()


def test_bad_server_settings_are_named():
    with pytest.raises(ValueError, match="^tick_interval"):
        argus.Server(tick_interval=0)
    with pytest.raises(ValueError, match="^host"):
        argus.Server(host="localhost:1")
    with pytest.raises(ValueError, match="^symbols"):
        argus.Server(symbols=["AA PL"])
    with pytest.raises(ValueError, match="^api_keys"):
        argus.Server(api_keys=["has space"])
