"""The original SDK's API, on the Argus engine.

Code written for the original SDK runs unchanged once its import reads
``from argus.websocket_client import ...``. Beyond the original:
``client.events()`` (the one ordered stream: data, gaps, resumes, state
changes), the ``slow_consumer`` keyword, handlers for events, and typed
errors (``client.last_error`` says why ``connect()`` returned ``False``).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import weakref
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Deque,
    Dict,
    List,
    Optional,
    Union,
)

from argus import _argus
from argus._argus import ArgusError, ConnectError, SubscribeError

__all__ = [
    "ArgusError",
    "ConnectError",
    "ConnectionConfig",
    "ConnectionState",
    "EventStream",
    "Handler",
    "QuickStartClient",
    "SubscribeError",
    "SubscriptionConfig",
    "WebSocketClient",
    "WebSocketClientManager",
]

#: A message handler: a plain function or an ``async def``, given one dict.
Handler = Callable[[Dict[str, Any]], Union[None, Awaitable[None]]]

#: The fields of the original SDK's ``get_stats()``, which come first.
_SEED_STATS = (
    "messages_received",
    "messages_sent",
    "reconnect_count",
    "errors",
    "state",
    "connection_id",
    "subscriptions_count",
    "uptime",
)

#: The slow-consumer policies (what happens when handlers fall behind).
SLOW_CONSUMER_POLICIES = ("backpressure", "drop_oldest", "conflate_latest")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: must be {minimum} or more (got {value})")


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: must be a number of seconds, not {type(value).__name__}")


@dataclass
class ConnectionConfig:
    """How to reach a server, and how to keep the connection alive.

    The fields and defaults are the original SDK's. Every field is checked
    when the config is made; a bad one raises ``ValueError`` or
    ``TypeError`` naming it. The api key never shows in ``repr``.
    """

    url: str
    api_key: Optional[str] = field(default=None, repr=False)
    max_reconnect_attempts: int = 5
    reconnect_delay: float = 1.0
    heartbeat_interval: int = 30
    timeout: int = 10
    max_subscriptions: int = 100

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checks every field (as the client will); raises naming the first bad one."""
        if not isinstance(self.url, str):
            raise TypeError(f"url: must be a str, not {type(self.url).__name__}")
        if self.api_key is not None and not isinstance(self.api_key, str):
            raise TypeError(f"api_key: must be a str or None, not {type(self.api_key).__name__}")
        _check_int("max_reconnect_attempts", self.max_reconnect_attempts, 0)
        _check_int("max_subscriptions", self.max_subscriptions, 1)
        for name in ("reconnect_delay", "heartbeat_interval", "timeout"):
            _check_seconds(name, getattr(self, name))
        _argus.check_connection_config(
            self.url,
            self.api_key,
            self.max_reconnect_attempts,
            float(self.reconnect_delay),
            float(self.heartbeat_interval),
            float(self.timeout),
            self.max_subscriptions,
        )

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'<redacted>' if f.name == 'api_key' and self.api_key else repr(getattr(self, f.name))}"
            for f in fields(self)
        )
        return f"ConnectionConfig({shown})"

    @classmethod
    def production(cls, url: str, api_key: str) -> "ConnectionConfig":
        """The original SDK's production settings: 10 attempts, 2 s delay,
        20 s heartbeat, 15 s timeout, 1000 subscriptions."""
        return cls(
            url=url,
            api_key=api_key,
            max_reconnect_attempts=10,
            reconnect_delay=2.0,
            heartbeat_interval=20,
            timeout=15,
            max_subscriptions=1000,
        )

    @classmethod
    def development(cls, url: str = "ws://localhost:8000/ws") -> "ConnectionConfig":
        """The original SDK's development settings: 3 attempts, 1 s delay,
        30 s heartbeat, 10 s timeout, 50 subscriptions, no key."""
        return cls(
            url=url,
            max_reconnect_attempts=3,
            reconnect_delay=1.0,
            heartbeat_interval=30,
            timeout=10,
            max_subscriptions=50,
        )

    @classmethod
    def high_frequency(cls, url: str, api_key: str) -> "ConnectionConfig":
        """The original SDK's high-frequency trading settings: 20 attempts,
        0.5 s delay, 10 s heartbeat, 5 s timeout, 5000 subscriptions."""
        return cls(
            url=url,
            api_key=api_key,
            max_reconnect_attempts=20,
            reconnect_delay=0.5,
            heartbeat_interval=10,
            timeout=5,
            max_subscriptions=5000,
        )


@dataclass
class SubscriptionConfig:
    """One subscription: symbols, data types (``price``, ``volume``,
    ``orderbook``), update frequency (``realtime``, ``1s``, ``5s``, ``1m``)
    and price filters (``min_price``, ``max_price``). Checked when made."""

    symbols: List[str]
    data_types: List[str]
    update_frequency: str = "realtime"
    filters: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checks every field (as the client will); raises naming the first bad one."""
        for name in ("symbols", "data_types"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise TypeError(f"{name}: must be a list of str, not {type(value).__name__}")
            for item in value:
                if not isinstance(item, str):
                    raise TypeError(f"{name}: must be a list of str; found {type(item).__name__}")
        if not isinstance(self.update_frequency, str):
            raise TypeError(
                f"update_frequency: must be a str, not {type(self.update_frequency).__name__}"
            )
        min_price, max_price = self._price_bounds()
        _argus.check_subscription_config(
            list(self.symbols), list(self.data_types), self.update_frequency, min_price, max_price
        )

    def _price_bounds(self) -> "tuple[Optional[float], Optional[float]]":
        filters = self.filters or {}
        if not isinstance(filters, dict):
            raise TypeError(f"filters: must be a dict or None, not {type(filters).__name__}")
        unknown = set(filters) - {"min_price", "max_price"}
        if unknown:
            raise ValueError(
                f"filters: unknown key(s) {sorted(unknown)}; use min_price and max_price"
            )
        bounds = []
        for key in ("min_price", "max_price"):
            value = filters.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(f"filters: {key} must be a number, not {type(value).__name__}")
            bounds.append(None if value is None else float(value))
        return bounds[0], bounds[1]


class ConnectionState(Enum):
    """The connection's state; ``.value`` is the original SDK's string."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ERROR = "error"


def _is_async(handler: Any) -> bool:
    """Whether ``handler`` is an ``async def`` (or an object whose
    ``__call__`` is), which runs on the loop."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)
    )


class EventStream:
    """``async for event in client.events()``: every event of the client, in
    order (data, ``gap``, ``resumed``, ``state_changed``, ``disconnected``,
    ...), each a dict whose ``type`` names it. Lossless: when this stream
    holds ``capacity`` unread events, the client stops handing out more
    until it is read (backpressure). Close it (``aclose()`` or leave an
    ``async with``) to stop receiving."""

    def __init__(self, client: "WebSocketClient", capacity: int) -> None:
        _check_int("capacity", capacity, 1)
        self._client = client
        self._items: Deque[Dict[str, Any]] = collections.deque()
        self._capacity = capacity
        self._waiter: Optional[asyncio.Future[None]] = None
        self._room: Optional[asyncio.Future[None]] = None
        self._closed = False
        # The engine holds only a weak reference: a stream nobody holds
        # any more stops receiving (and stops holding the client back).
        ref = weakref.ref(self)

        def push(event: Dict[str, Any]) -> None:
            stream = ref()
            if stream is not None:
                stream._push(event)

        self._native = client._native
        self._sink = client._native.add_sink(push)
        client._streams.add(self)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._native.remove_sink(self._sink)

    def _push(self, event: Dict[str, Any]) -> None:
        self._items.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _full(self) -> bool:
        return not self._closed and len(self._items) >= self._capacity

    async def _wait_for_room(self) -> None:
        while self._full() and not self._client._stopping:
            self._room = asyncio.get_running_loop().create_future()
            await self._room

    def _wake_pump(self) -> None:
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Dict[str, Any]:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._client._ensure_pump()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._items.popleft()
        if len(self._items) < self._capacity:
            self._wake_pump()
        return event

    async def aclose(self) -> None:
        """Stops this stream; events already received are still yielded."""
        self.close()

    def close(self) -> None:
        """Stops this stream (no more events are added)."""
        if self._closed:
            return
        self._closed = True
        self._native.remove_sink(self._sink)
        self._client._streams.discard(self)
        self._wake_pump()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class WebSocketClient:
    """A connection to an Argus server, as in the original SDK.

    The Rust engine reads the socket on an I/O thread of its own and hands
    out every batch of ready events with the GIL taken once: it calls the
    plain-function handlers there and then, and wakes the asyncio loop that
    called ``connect()`` only for what must run on it (``async def``
    handlers, ``on_loop=True`` handlers, ``events()`` streams); see
    :meth:`add_message_handler`. Dicts are built without JSON.

    ``slow_consumer`` chooses what happens when the Python side (handlers and
    ``events()`` streams) falls behind the feed: ``"backpressure"``
    (default, lossless: the engine stops reading the socket until Python
    catches up, so the server sees the client slow down), ``"drop_oldest"``
    or ``"conflate_latest"`` (latest per symbol and data type), with room
    for ``queue_capacity`` events; a lossy policy says what it dropped with
    a ``{"type": "lagged", "missed": n}`` event, in its place.
    """

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        slow_consumer: str = "backpressure",
        queue_capacity: int = 1024,
    ) -> None:
        if not isinstance(config, ConnectionConfig):
            raise TypeError(f"config: must be a ConnectionConfig, not {type(config).__name__}")
        if slow_consumer not in SLOW_CONSUMER_POLICIES:
            raise ValueError(
                f"slow_consumer: {slow_consumer!r} is not a policy: use "
                + ", ".join(SLOW_CONSUMER_POLICIES)
            )
        _check_int("queue_capacity", queue_capacity, 1)
        config.validate()
        self.config = config
        self.slow_consumer = slow_consumer
        #: Why the last ``connect()`` returned ``False`` (a ``ConnectError``).
        self.last_error: Optional[BaseException] = None
        self._native = _argus.Client(
            config.url,
            config.api_key,
            config.max_reconnect_attempts,
            float(config.reconnect_delay),
            float(config.heartbeat_interval),
            float(config.timeout),
            config.max_subscriptions,
            slow_consumer,
            queue_capacity,
        )
        self._pump: Optional[asyncio.Task[None]] = None
        self._stopping = False
        self._wakeup: Optional[asyncio.Event] = None
        self._streams: "weakref.WeakSet[EventStream]" = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"WebSocketClient(config={self.config!r}, state={self.state.value!r})"

    @property
    def state(self) -> ConnectionState:
        """The connection's state."""
        return ConnectionState(self._native.state)

    async def connect(self) -> bool:
        """Connects; ``True`` once connected. A failed attempt is retried with
        backoff up to ``max_reconnect_attempts`` times; refused credentials
        or a bad URL end it at once. ``False`` when it gave up (the reason
        is in ``last_error``)."""
        self._ensure_pump()
        try:
            await self._native.connect()
        except ConnectError as error:
            self.last_error = error
            return False
        self.last_error = None
        return True

    async def disconnect(self) -> None:
        """Closes the connection (code 1000); every subscription is dropped.
        Events up to this point are still dispatched."""
        await self._native.disconnect()
        await self._stop_pump()

    async def subscribe(self, subscription_id: str, config: SubscriptionConfig) -> str:
        """Subscribes; returns the id once the server acknowledged it.
        ``ValueError`` for a bad or duplicate request, ``SubscribeError`` if
        the server refused it or the client is not connected."""
        if not isinstance(subscription_id, str):
            raise TypeError(
                f"subscription_id: must be a str, not {type(subscription_id).__name__}"
            )
        if not isinstance(config, SubscriptionConfig):
            raise TypeError(f"config: must be a SubscriptionConfig, not {type(config).__name__}")
        config.validate()
        min_price, max_price = config._price_bounds()
        self._ensure_pump()
        return await self._native.subscribe(
            subscription_id,
            list(config.symbols),
            list(config.data_types),
            config.update_frequency,
            min_price,
            max_price,
        )

    async def unsubscribe(self, subscription_id: str) -> None:
        """Unsubscribes at once; ``ValueError`` for an unknown id."""
        if not isinstance(subscription_id, str):
            raise TypeError(
                f"subscription_id: must be a str, not {type(subscription_id).__name__}"
            )
        await self._native.unsubscribe(subscription_id)

    def add_message_handler(
        self, data_type: str, handler: Handler, *, on_loop: Optional[bool] = None
    ) -> int:
        """Calls ``handler(data)`` for each message of ``data_type``
        (``"price"``, ``"volume"``, ``"orderbook"``; ``"debug"`` sees
        everything, events included; an event kind such as ``"gap"`` sees
        those events), in the stream's order. Returns an id for
        ``remove_message_handler``.

        Where it runs (``on_loop=None`` chooses by the handler's kind):

        - A plain function runs on the engine's I/O thread (``argus-io``,
          not the asyncio loop's thread), with the GIL held, as soon as the
          message is decoded: no loop wake-up per message. It may use any
          Python object (the GIL interleaves it with the loop's code one
          bytecode at a time: guard multi-step updates with a
          ``threading.Lock``), must not block (while it runs, no client's
          socket is read and no ping answered), and must not call asyncio
          APIs that need the running loop (``asyncio.create_task``,
          ``asyncio.Event.set``): use ``loop.call_soon_threadsafe`` for
          those, or ``on_loop=True``. An awaitable it returns is awaited
          on the loop, in order.
        - An ``async def``, or any handler with ``on_loop=True``, runs on
          the loop that called ``connect()``. The loop's handlers take each
          message in turn, an ``async def``'s coroutine awaited before the
          next call.

        Each handler sees every message in order; a handler on the I/O
        thread may be ahead of the loop's handlers and ``events()`` streams
        by up to ``queue_capacity`` events (then it waits for them). A
        handler that raises is logged (logger ``argus``) and counted in
        ``get_stats()["handler_errors"]``; the client goes on."""
        return self._add_handler(data_type, handler, None, on_loop)

    def _add_handler(
        self,
        data_type: str,
        handler: Handler,
        subscription: Optional[str],
        on_loop: Optional[bool] = None,
    ) -> int:
        if not isinstance(data_type, str):
            raise TypeError(f"data_type: must be a str, not {type(data_type).__name__}")
        if not callable(handler):
            raise TypeError(f"handler: must be callable, not {type(handler).__name__}")
        if on_loop is None:
            on_loop = _is_async(handler)
        elif not isinstance(on_loop, bool):
            raise TypeError(f"on_loop: must be a bool or None, not {type(on_loop).__name__}")
        return self._native.add_handler(data_type, handler, subscription, on_loop)

    def remove_message_handler(self, handler_id: int) -> bool:
        """Removes a handler; whether it was registered."""
        return self._native.remove_handler(handler_id)

    async def get_stats(self) -> Dict[str, Any]:
        """The original SDK's statistics (``messages_received``,
        ``messages_sent``, ``reconnect_count``, ``errors``, ``state``,
        ``connection_id``, ``subscriptions_count``, ``uptime``), then ours
        (gaps, duplicates, rtt, the queue, ``handler_errors``, ...)."""
        raw = await self._native.stats()
        raw["handlers"] = self._native.handler_count
        stats = {name: raw.pop(name) for name in _SEED_STATS}
        stats.update(raw)
        return stats

    async def wait_for_connection(self, timeout: Optional[float] = None) -> bool:
        """Waits until connected; ``False`` if the client gave up, is
        disconnected, or ``timeout`` seconds passed."""
        try:
            await asyncio.wait_for(self._native.wait_for_connection(), timeout)
        except (ConnectError, asyncio.TimeoutError):
            return False
        return True

    def events(self, capacity: int = 65536) -> EventStream:
        """A new stream of every event from now on, in order (see
        :class:`EventStream`)."""
        return EventStream(self, capacity)

    # The engine's dispatcher (on the I/O thread) calls the plain-function
    # handlers itself and queues the rest for the loop side: one task on the
    # application's loop (the pump), woken only when there is loop work.

    def _ensure_pump(self) -> None:
        if self._pump is None or self._pump.done():
            loop = asyncio.get_running_loop()
            self._stopping = False
            self._wakeup = asyncio.Event()
            self._native.start(loop.call_soon_threadsafe, self._wakeup.set)
            self._pump = loop.create_task(self._run_pump())

    async def _stop_pump(self) -> None:
        pump = self._pump
        if pump is None:
            return
        self._stopping = True
        for stream in list(self._streams):
            stream._wake_pump()
        await self._native.stop()
        if self._wakeup is not None:
            self._wakeup.set()
        if pump is not asyncio.current_task():
            await pump

    async def _run_pump(self) -> None:
        native, wakeup = self._native, self._wakeup
        assert wakeup is not None
        try:
            while True:
                wakeup.clear()
                step = native.dispatch_loop()
                if step is None:
                    if self._stopping and not native.dispatching:
                        return
                    await wakeup.wait()
                elif step is True:
                    # Handed events out: let the rest of the application
                    # (the events() readers first) run before taking more.
                    await asyncio.sleep(0)
                    for stream in list(self._streams):
                        if stream._full():
                            await stream._wait_for_room()
                else:
                    try:
                        await step
                    except Exception as error:  # a handler's failure is not the client's
                        native.record_handler_error(error)
        finally:
            if not self._stopping:
                # The loop is going away (this task was cancelled, or failed):
                # nothing may call into it any more.
                native.halt()


class WebSocketClientManager:
    """Several named clients, as in the original SDK."""

    def __init__(self) -> None:
        self.clients: Dict[str, WebSocketClient] = {}

    def create_client(
        self, client_id: str, config: ConnectionConfig, **options: Any
    ) -> WebSocketClient:
        """Makes a client under ``client_id`` (``ValueError`` if taken);
        ``options`` go to :class:`WebSocketClient`."""
        if not isinstance(client_id, str):
            raise TypeError(f"client_id: must be a str, not {type(client_id).__name__}")
        if client_id in self.clients:
            raise ValueError(f"client_id: {client_id!r} is already in use")
        client = WebSocketClient(config, **options)
        self.clients[client_id] = client
        return client

    def get_client(self, client_id: str) -> Optional[WebSocketClient]:
        """The client named ``client_id``, if any."""
        return self.clients.get(client_id)

    async def remove_client(self, client_id: str) -> bool:
        """Disconnects and forgets a client; whether it existed."""
        client = self.clients.pop(client_id, None)
        if client is None:
            return False
        await client.disconnect()
        return True

    async def get_all_stats(self) -> Dict[str, Dict[str, Any]]:
        """Every client's ``get_stats()``, by id."""
        names = list(self.clients)
        stats = await asyncio.gather(*(self.clients[n].get_stats() for n in names))
        return dict(zip(names, stats))

    async def close_all(self) -> None:
        """Disconnects every client and forgets them."""
        clients = list(self.clients.values())
        self.clients.clear()
        await asyncio.gather(*(c.disconnect() for c in clients))


class QuickStartClient:
    """Shortcuts for the common case, as in the original SDK."""

    _ids = itertools.count(1)

    @staticmethod
    async def create(url: str, api_key: Optional[str] = None) -> WebSocketClient:
        """A client for ``url`` with the default settings (not connected yet)."""
        return WebSocketClient(ConnectionConfig(url=url, api_key=api_key))

    @staticmethod
    async def subscribe_stocks(
        client: WebSocketClient, symbols: List[str], handler: Handler
    ) -> str:
        """Subscribes to the price and volume of ``symbols`` under a fresh id
        (``stocks-N``), ``handler`` seeing that subscription's messages;
        connects first if needed. Returns the id."""
        if client.state is not ConnectionState.CONNECTED and not await client.connect():
            raise client.last_error or ConnectError("could not connect", False)
        subscription_id = f"stocks-{next(QuickStartClient._ids)}"
        config = SubscriptionConfig(symbols=list(symbols), data_types=["price", "volume"])
        handler_ids = [
            client._add_handler(data_type, handler, subscription_id)
            for data_type in config.data_types
        ]
        try:
            return await client.subscribe(subscription_id, config)
        except BaseException:
            for handler_id in handler_ids:
                client.remove_message_handler(handler_id)
            raise
