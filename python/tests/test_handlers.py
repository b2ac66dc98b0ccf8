"""Where handlers run, and the order every consumer sees.

Plain-function handlers run on the engine's I/O thread; ``async def``
handlers, ``on_loop=True`` handlers and ``events()`` streams run on the
asyncio loop. Each of them sees the client's one ordered stream."""

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

from argus.websocket_client import SubscriptionConfig, WebSocketClient
from conftest import DEADLINE, fast_config, wait_until


def _key(event):
    return (event["type"], event.get("seq"))


async def test_plain_handlers_run_on_the_io_thread_async_and_on_loop_ones_on_the_loop(client):
    loop_thread = threading.get_ident()
    plain, async_, on_loop = set(), set(), set()
    no_loop = []

    def plain_handler(data):
        plain.add(threading.get_ident())
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            no_loop.append(True)

    async def async_handler(data):
        async_.add(threading.get_ident())

    client.add_message_handler("price", plain_handler)
    client.add_message_handler("price", async_handler)
    client.add_message_handler("price", lambda d: on_loop.add(threading.get_ident()), on_loop=True)
    assert await client.connect()
    await client.subscribe("main", SubscriptionConfig(["AAPL"], ["price"]))
    await wait_until(lambda: len(no_loop) >= 5 and async_ and on_loop)
    assert len(plain) == 1 and loop_thread not in plain
    assert async_ == {loop_thread} and on_loop == {loop_thread}
    with pytest.raises(TypeError, match="^on_loop"):
        client.add_message_handler("price", print, on_loop="yes")


async def test_every_consumer_sees_the_one_ordered_stream(server):
    """A plain handler (I/O thread), an async one and an on_loop one (loop)
    and an events() stream see the same events in the same order, gaps and
    resumes in place, through a forced drop and a skipped seq."""
    client = WebSocketClient(fast_config(server.url))
    plain, async_, on_loop = [], [], []

    async def async_handler(event):
        async_.append(_key(event))
        await asyncio.sleep(0)

    client.add_message_handler("debug", lambda e: plain.append(_key(e)))
    client.add_message_handler("debug", async_handler)
    client.add_message_handler("debug", lambda e: on_loop.append(_key(e)), on_loop=True)
    stream = client.events()
    try:
        assert await client.connect()
        await client.subscribe("main", SubscriptionConfig(["AAPL", "MSFT", "NVDA"], ["price"]))
        await wait_until(lambda: len(data_keys(async_)) >= 20)
        assert server.drop_connections() == 1
        await wait_until(lambda: ("resumed", None) in async_)
        server.skip_seq()
        await wait_until(lambda: ("gap", None) in async_)
        mark = len(async_)
        await wait_until(lambda: len(data_keys(async_[mark:])) >= 5)
    finally:
        await client.disconnect()
    stream.close()
    streamed = [_key(e) async for e in stream]

    # Everything up to disconnect() was dispatched to every consumer.
    assert plain == async_ == on_loop == streamed
    kinds = [k for k, _ in plain]
    assert kinds.index("disconnected") < kinds.index("resumed") < kinds.index("gap")
    seqs = data_keys(plain)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def data_keys(keys):
    return [seq for kind, seq in keys if kind == "price"]


async def test_an_awaitable_a_plain_handler_returns_is_awaited_on_the_loop_in_order(client):
    loop_thread = threading.get_ident()
    awaited = []

    async def record(data):
        await asyncio.sleep(0)
        awaited.append((data["seq"], threading.get_ident()))

    # A lambda is a plain function: it runs on the I/O thread and returns
    # the coroutine, which the loop awaits.
    client.add_message_handler("price", lambda d: record(d))
    assert await client.connect()
    await client.subscribe("main", SubscriptionConfig(["AAPL", "MSFT"], ["price"]))
    await wait_until(lambda: len(awaited) >= 20)
    seqs = [seq for seq, _ in awaited]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {thread for _, thread in awaited} == {loop_thread}


async def test_a_slow_loop_consumer_holds_the_io_thread_back_losslessly(server):
    capacity = 8
    client = WebSocketClient(fast_config(server.url), queue_capacity=capacity)
    plain, slow = [], []
    lead = []

    def fast(data):
        plain.append(data["seq"])
        lead.append(len(plain) - len(slow))

    async def slower_than_the_feed(data):
        slow.append(data["seq"])
        await asyncio.sleep(0.002)

    client.add_message_handler("price", fast)
    client.add_message_handler("price", slower_than_the_feed)
    try:
        assert await client.connect()
        await client.subscribe("main", SubscriptionConfig(["AAPL", "MSFT", "NVDA", "TSLA"], ["price"]))
        await wait_until(lambda: len(slow) >= 200)
    finally:
        await client.disconnect()
    # The loop's queue holds the I/O thread back: its lead stays bounded by
    # the queues (the stream's and the loop's, plus one batch), nothing is lost.
    assert max(lead) <= 3 * capacity, max(lead)
    assert slow == plain
    assert slow == list(range(slow[0], slow[0] + len(slow)))


EXIT_WHILE_CONNECTED = textwrap.dedent(
    """
    import asyncio, sys, argus
    from argus.websocket_client import ConnectionConfig, SubscriptionConfig, WebSocketClient

    seen = []

    async def main(url):
        client = WebSocketClient(ConnectionConfig(url=url))
        client.add_message_handler("price", lambda d: seen.append(d["price"]))
        async def later(d):
            pass
        client.add_message_handler("price", later)
        assert await client.connect()
        await client.subscribe("s", SubscriptionConfig(["AAPL", "MSFT"], ["price"]))
        while len(seen) < 2000:
            await asyncio.sleep(0.001)
        if sys.argv[1] == "disconnect":
            # The interpreter ends right after the last future resolved.
            await client.disconnect()
        # Else no disconnect: the loop and then the interpreter end while
        # the feed still runs.

    server = argus.Server(firehose=True, firehose_rate=200000)
    asyncio.run(main(server.url))
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("attempt", range(2))
@pytest.mark.parametrize("ending", ["disconnect", "none"])
def test_the_interpreter_exits_cleanly_while_handlers_are_being_called(ending, attempt):
    """No thread of the engine touches Python once the interpreter
    finalizes (it crashed the process: SIGSEGV, or SIGABRT with
    'PyGILState_Release: thread state must be current')."""
    out = subprocess.run(
        [sys.executable, "-c", EXIT_WHILE_CONNECTED, ending],
        capture_output=True,
        text=True,
        timeout=DEADLINE * 3,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
    assert "panicked" not in out.stderr and "Fatal" not in out.stderr, out.stderr


PLACED_BEFORE_IMPORT = textwrap.dedent(
    """
    import os, sys
    cpu = int(sys.argv[1])
    os.sched_setaffinity(0, {cpu})
    import argus.websocket_client  # starts argus-io
    io = [
        int(tid)
        for tid in os.listdir("/proc/self/task")
        if open(f"/proc/self/task/{tid}/comm").read().strip() == "argus-io"
    ]
    assert len(io) == 1, io
    print(sorted(os.sched_getaffinity(io[0])))
    """
)


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="Linux only")
def test_the_io_thread_takes_the_cpu_mask_of_the_importing_thread():
    """The README's "Tail latency": `os.sched_setaffinity` before `import
    argus` places the engine's I/O thread."""
    import os

    cpu = max(os.sched_getaffinity(0))
    out = subprocess.run(
        [sys.executable, "-c", PLACED_BEFORE_IMPORT, str(cpu)],
        capture_output=True,
        text=True,
        timeout=DEADLINE * 3,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"[{cpu}]"
