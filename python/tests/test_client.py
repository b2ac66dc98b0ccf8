"""WebSocketClient against the reference server, method by method."""

import asyncio
import re

import pytest

import argus
from argus.websocket_client import (
    ConnectError,
    ConnectionState,
    SubscribeError,
    SubscriptionConfig,
    WebSocketClient,
)
from conftest import collect_until, data, fast_config, wait_until

SEED_STATS = [
    "messages_received",
    "messages_sent",
    "reconnect_count",
    "errors",
    "state",
    "connection_id",
    "subscriptions_count",
    "uptime",
]


async def test_connect_subscribe_stats_disconnect(client):
    assert client.state is ConnectionState.DISCONNECTED
    assert await client.connect() is True
    assert client.state is ConnectionState.CONNECTED
    assert client.state.value == "connected"
    assert await client.wait_for_connection() is True
    assert await client.subscribe("main", SubscriptionConfig(["AAPL"], ["price"])) == "main"

    stats = await client.get_stats()
    assert list(stats)[:8] == SEED_STATS
    assert stats["state"] == "connected"
    assert stats["subscriptions_count"] == 1
    assert stats["messages_sent"] >= 1
    assert stats["reconnect_count"] == 0
    assert stats["errors"] == 0
    assert re.fullmatch(r"[0-9a-f-]{36}", stats["connection_id"])
    assert re.fullmatch(r"\d+:\d\d:\d\d\.\d{6}", stats["uptime"])
    for ours in ("gaps", "duplicates", "handler_errors", "queue", "data_messages"):
        assert ours in stats

    await client.disconnect()
    assert client.state is ConnectionState.DISCONNECTED
    assert (await client.get_stats())["subscriptions_count"] == 0
    # A later connect starts afresh.
    assert await client.connect() is True


async def test_price_handler_gets_the_seeds_dict(client):
    prices = []
    client.add_message_handler("price", prices.append)
    assert await client.connect()
    await client.subscribe(
        "main", SubscriptionConfig(["AAPL", "GOOGL"], ["price", "volume", "orderbook"])
    )
    await wait_until(lambda: len(prices) >= 20)
    for message in prices:
        assert message["type"] == "price"
        assert message["symbol"] in ("AAPL", "GOOGL")
        assert isinstance(message["price"], float)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", message["timestamp"])
        assert message["sub"] == "main"
    seqs = [m["seq"] for m in prices]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_orderbook_and_volume_dicts(client):
    books, volumes = [], []
    client.add_message_handler("orderbook", books.append)
    client.add_message_handler("volume", volumes.append)
    assert await client.connect()
    await client.subscribe("main", SubscriptionConfig(["MSFT"], ["volume", "orderbook"]))
    await wait_until(lambda: len(books) >= 3 and len(volumes) >= 3)
    book = books[0]
    assert book["symbol"] == "MSFT"
    assert len(book["bids"]) == 10 and len(book["asks"]) == 10
    best_bid, best_ask = book["bids"][0], book["asks"][0]
    assert isinstance(best_bid[0], float) and isinstance(best_bid[1], int)
    assert best_bid[0] < best_ask[0]
    assert all(isinstance(v["volume"], int) for v in volumes)


async def test_async_handlers_are_awaited_in_order(client):
    trace = []

    async def slow(data):
        trace.append(data["seq"])
        await asyncio.sleep(0)
        trace.append(-data["seq"])

    def fast(data):
        trace.append(("sync", data["seq"]))

    client.add_message_handler("price", slow)
    client.add_message_handler("price", fast, on_loop=True)
    assert await client.connect()
    await client.subscribe("main", SubscriptionConfig(["AAPL", "MSFT"], ["price"]))
    await wait_until(lambda: len(trace) >= 60)
    # Each message: the async handler runs to its end, then the sync one
    # (on the loop too), then the next message.
    groups = [trace[i : i + 3] for i in range(0, len(trace) - len(trace) % 3, 3)]
    for seq, negative, sync in groups:
        assert negative == -seq and sync == ("sync", seq)
    seqs = [g[0] for g in groups]
    assert seqs == sorted(seqs)


async def test_debug_sees_everything(client):
    seen = []
    client.add_message_handler("debug", seen.append)
    assert await client.connect()
    await client.subscribe("main", SubscriptionConfig(["AAPL"], ["price", "volume"]))
    await wait_until(lambda: {"price", "volume"} <= {e["type"] for e in seen})
    kinds = [e["type"] for e in seen]
    assert kinds[0] == "state_changed"
    assert {"subscribed", "price", "volume"} <= set(kinds)
    assert kinds.index("subscribed") < kinds.index("price")


async def test_a_handler_that_raises_is_counted_and_the_client_goes_on(client, caplog):
    received = []

    def broken(data):
        raise RuntimeError("handler bug")

    async def broken_async(data):
        raise KeyError("async handler bug")

    client.add_message_handler("price", broken)
    client.add_message_handler("price", broken_async)
    client.add_message_handler("price", received.append)
    assert await client.connect()
    await client.subscribe("main", SubscriptionConfig(["AAPL"], ["price"]))
    await wait_until(lambda: len(received) >= 10)
    stats = await client.get_stats()
    assert stats["handler_errors"] >= 2 * 10
    assert stats["state"] == "connected"
    assert "handler bug" in caplog.text and "async handler bug" in caplog.text


async def test_remove_message_handler(client):
    kept, removed = [], []
    client.add_message_handler("price", kept.append)
    handler = client.add_message_handler("price", removed.append)
    assert client.remove_message_handler(handler) is True
    assert client.remove_message_handler(handler) is False
    assert await client.connect()
    await client.subscribe("main", SubscriptionConfig(["AAPL"], ["price"]))
    await wait_until(lambda: len(kept) >= 5)
    assert removed == []


async def test_unsubscribe_stops_that_subscription(client):
    assert await client.connect()
    events = client.events()
    await client.subscribe("a", SubscriptionConfig(["AAPL"], ["price"]))
    await client.subscribe("b", SubscriptionConfig(["MSFT"], ["price"]))
    await collect_until(events, lambda seen: {"a", "b"} <= {e.get("sub") for e in data(seen)})
    await client.unsubscribe("a")
    after = await collect_until(
        events, lambda seen: len([e for e in data(seen) if e["sub"] == "b"]) >= 30
    )
    # Data of `a` published before unsubscribe() returned may still be in
    # flight; then it stops, while `b` goes on.
    subs = [e["sub"] for e in data(after)]
    last_a = max((i for i, s in enumerate(subs) if s == "a"), default=-1)
    assert len(subs) - last_a - 1 >= 20, subs
    with pytest.raises(ValueError, match="^subscription_id"):
        await client.unsubscribe("a")
    assert (await client.get_stats())["subscriptions_count"] == 1


async def test_subscribe_errors(client):
    config = SubscriptionConfig(["AAPL"], ["price"])
    with pytest.raises(SubscribeError):
        await client.subscribe("early", config)  # not connected
    assert await client.connect()
    with pytest.raises(SubscribeError, match="unknown_symbol"):
        await client.subscribe("nosuch", SubscriptionConfig(["ZZZZ"], ["price"]))
    await client.subscribe("main", config)
    with pytest.raises(ValueError, match="^subscription_id: .*already exists"):
        await client.subscribe("main", config)
    for bad in ("", "a b", "x" * 65):
        with pytest.raises(ValueError, match="^subscription_id"):
            await client.subscribe(bad, config)
    with pytest.raises(TypeError, match="^config"):
        await client.subscribe("x", {"symbols": ["AAPL"]})


async def test_max_subscriptions_is_enforced(server):
    client = WebSocketClient(fast_config(server.url, max_subscriptions=1))
    assert await client.connect()
    await client.subscribe("one", SubscriptionConfig(["AAPL"], ["price"]))
    with pytest.raises(ValueError, match="^max_subscriptions"):
        await client.subscribe("two", SubscriptionConfig(["MSFT"], ["price"]))
    await client.disconnect()


async def test_price_filters_apply(client):
    low, high = [], []
    client.add_message_handler("price", lambda d: (low if d["sub"] == "low" else high).append(d))
    assert await client.connect()
    await client.subscribe("low", SubscriptionConfig(["AAPL", "MSFT"], ["price"], filters={"max_price": 300}))
    await client.subscribe("high", SubscriptionConfig(["AAPL", "MSFT"], ["price"], filters={"min_price": 300}))
    await wait_until(lambda: len(low) >= 10 and len(high) >= 10)
    assert {d["symbol"] for d in low} == {"AAPL"}
    assert {d["symbol"] for d in high} == {"MSFT"}


async def test_gaps_and_resumes_arrive_in_place_through_events(server):
    client = WebSocketClient(fast_config(server.url))
    try:
        events = client.events()
        assert await client.connect()
        await client.subscribe("main", SubscriptionConfig(["AAPL", "MSFT", "NVDA"], ["price"]))
        seen = await collect_until(events, lambda s: len(data(s)) >= 20)

        # Two forced drops: each is resumed and replayed, nothing is lost.
        for _ in range(2):
            assert server.drop_connections() == 1
            start = len(seen)
            seen += await collect_until(events, lambda s: any(e["type"] == "resumed" for e in s))
            seen += await collect_until(events, lambda s: len(data(s)) >= 20)
            kinds = [e["type"] for e in seen[start:]]
            assert "disconnected" in kinds and "resumed" in kinds

        # A skipped seq: a gap event between the data before and after it.
        server.skip_seq()
        seen += await collect_until(events, lambda s: any(e["type"] == "gap" for e in s))
        seen += await collect_until(events, lambda s: len(data(s)) >= 5)
    finally:
        await client.disconnect()

    gaps = [i for i, e in enumerate(seen) if e["type"] == "gap"]
    assert len(gaps) == 1
    gap = seen[gaps[0]]
    assert gap["cause"] == "seq_jump" and gap["to"] == gap["from"]
    before = [e["seq"] for e in data(seen[: gaps[0]])]
    after = [e["seq"] for e in data(seen[gaps[0] :])]
    # Every seq once, in order, the gap's seq missing exactly where the gap stands.
    assert before == list(range(before[0], before[-1] + 1))
    assert before[-1] == gap["from"] - 1
    assert after[0] == gap["to"] + 1
    assert after == list(range(after[0], after[-1] + 1))
    assert not any(e["type"] == "lagged" for e in seen)
    stats = await client.get_stats()
    assert stats["gaps"] == 1 and stats["reconnect_count"] == 2


async def test_a_slow_events_consumer_loses_nothing(server):
    client = WebSocketClient(fast_config(server.url))
    try:
        events = client.events(capacity=4)
        assert await client.connect()
        await client.subscribe("main", SubscriptionConfig(["AAPL", "MSFT", "NVDA", "TSLA"], ["price"]))
        seqs = []
        deadline = asyncio.get_running_loop().time() + 10
        async for event in events:
            if event["type"] == "price":
                seqs.append(event["seq"])
                await asyncio.sleep(0.001)  # a consumer slower than the feed
            if len(seqs) >= 200:
                break
            assert asyncio.get_running_loop().time() < deadline
        assert seqs == list(range(seqs[0], seqs[0] + 200))
    finally:
        await client.disconnect()


async def test_a_refused_key_fails_at_once_without_retries():
    with argus.Server(api_keys=["right-key"]) as server:
        client = WebSocketClient(fast_config(server.url, api_key="wrong-key", max_reconnect_attempts=5))
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await client.connect() is False
        assert loop.time() - started < 2
        assert isinstance(client.last_error, ConnectError)
        message, fatal = client.last_error.args
        assert fatal is True and "401" in message
        assert client.state is ConnectionState.ERROR
        assert await client.wait_for_connection(timeout=1) is False
        stats = server.stats()
        assert stats["connections_unauthorized"] == 1
        assert stats["connection_attempts"] == 1
        assert "wrong-key" not in repr(client) + str(client.last_error)

        good = WebSocketClient(fast_config(server.url, api_key="right-key"))
        assert await good.connect() is True
        await good.disconnect()


async def test_the_slow_consumer_policy_is_a_keyword(server):
    client = WebSocketClient(fast_config(server.url), slow_consumer="conflate_latest", queue_capacity=64)
    stats = await client.get_stats()
    assert stats["queue"]["policy"] == "conflate_latest"
    assert stats["queue"]["capacity"] == 64


async def test_a_lossy_policy_says_what_it_dropped_where_it_dropped_it(server):
    client = WebSocketClient(fast_config(server.url), slow_consumer="drop_oldest", queue_capacity=4)
    seen = []

    async def slow(event):
        seen.append(event)
        if event["type"] == "price":
            await asyncio.sleep(0.002)  # slower than the feed

    client.add_message_handler("debug", slow)
    try:
        assert await client.connect()
        await client.subscribe("main", SubscriptionConfig(["AAPL", "MSFT", "NVDA", "TSLA"], ["price"]))
        await wait_until(lambda: sum(1 for e in seen if e["type"] == "lagged") >= 3)
    finally:
        await client.disconnect()
    # Seqs still increase; every seq missing between two prices is
    # accounted for by the lagged events standing between them.
    last, missed_since = None, 0
    for event in seen:
        if event["type"] == "lagged":
            assert event["missed"] > 0
            missed_since += event["missed"]
        elif event["type"] == "price":
            if last is not None:
                assert event["seq"] > last
                assert event["seq"] - last - 1 <= missed_since
            last, missed_since = event["seq"], 0
