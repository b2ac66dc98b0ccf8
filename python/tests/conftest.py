"""Shared fixtures: a reference server in-process per test, and bounded waits."""

import asyncio
from typing import Any, Callable, Dict, List

import pytest

import argus
from argus.websocket_client import ConnectionConfig, EventStream, WebSocketClient

#: The longest any single wait in the suite may take.
DEADLINE = 10.0


@pytest.fixture
def server():
    """A fast-ticking reference server on a free loopback port."""
    with argus.Server(tick_interval=0.005) as s:
        yield s


def fast_config(url: str, **overrides: Any) -> ConnectionConfig:
    """A config that reconnects quickly (tests force drops)."""
    fields = dict(url=url, reconnect_delay=0.05, timeout=5)
    fields.update(overrides)
    return ConnectionConfig(**fields)


@pytest.fixture
async def client(server):
    c = WebSocketClient(fast_config(server.url))
    yield c
    await c.disconnect()


async def collect_until(
    stream: EventStream,
    done: Callable[[List[Dict[str, Any]]], bool],
    deadline: float = DEADLINE,
) -> List[Dict[str, Any]]:
    """Reads ``stream`` into a list until ``done(list)``; fails after ``deadline`` seconds."""
    seen: List[Dict[str, Any]] = []

    async def read() -> None:
        async for event in stream:
            seen.append(event)
            if done(seen):
                return
        raise AssertionError("the event stream ended")

    try:
        await asyncio.wait_for(read(), deadline)
    except asyncio.TimeoutError:
        kinds = [e["type"] for e in seen[-20:]]
        raise AssertionError(f"not done within {deadline}s; last events: {kinds}") from None
    return seen


def data(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The market data among ``events``."""
    return [e for e in events if e["type"] in ("price", "volume", "orderbook")]


async def wait_until(predicate: Callable[[], bool], deadline: float = DEADLINE) -> None:
    """Yields to the loop until ``predicate()``; fails after ``deadline`` seconds.
    For state the handlers fill in: each turn lets the client dispatch."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"condition not met within {deadline}s")
        await asyncio.sleep(0.005)
