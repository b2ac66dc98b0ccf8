"""Type stubs of the native half of the package (``argus._argus``)."""

from typing import Any, Awaitable, Callable, Dict, List, Optional, Union

__version__: str

class ArgusError(Exception):
    """Base of the errors Argus raises (besides ValueError and TypeError)."""

class ConnectError(ArgusError):
    """The client could not connect, gave up, or is disconnected.
    ``args`` is ``(message, fatal)``."""

class SubscribeError(ArgusError):
    """The server refused a subscription, or the client could not make it."""

class Client:
    """The engine of one ``WebSocketClient``."""

    def __init__(
        self,
        url: str,
        api_key: Optional[str] = None,
        max_reconnect_attempts: int = 5,
        reconnect_delay: float = 1.0,
        heartbeat_interval: float = 30.0,
        timeout: float = 10.0,
        max_subscriptions: int = 100,
        slow_consumer: str = "backpressure",
        queue_capacity: int = 1024,
    ) -> None: ...
    def connect(self) -> Awaitable[None]: ...
    def disconnect(self) -> Awaitable[None]: ...
    def subscribe(
        self,
        id: str,
        symbols: List[str],
        data_types: List[str],
        update_frequency: str = "realtime",
        min_price: Optional[float] = None,
        max_price: Optional[float] = None,
    ) -> Awaitable[str]: ...
    def unsubscribe(self, id: str) -> Awaitable[None]: ...
    def wait_for_connection(self) -> Awaitable[None]: ...
    def stats(self) -> Awaitable[Dict[str, Any]]: ...
    @property
    def state(self) -> str: ...
    @property
    def handler_errors(self) -> int: ...
    @property
    def handler_count(self) -> int: ...
    def add_handler(
        self,
        kind: str,
        func: Callable[[Dict[str, Any]], Any],
        subscription: Optional[str] = None,
        on_loop: bool = False,
    ) -> int:
        """``func`` runs on the engine's I/O thread (GIL held), or on the
        asyncio loop when ``on_loop``."""
    def remove_handler(self, id: int) -> bool: ...
    def add_sink(self, push: Callable[[Dict[str, Any]], None]) -> int: ...
    def remove_sink(self, id: int) -> None: ...
    def start(self, call_soon_threadsafe: Callable[..., Any], wake: Callable[[], None]) -> None: ...
    def stop(self) -> Awaitable[None]: ...
    def halt(self) -> None: ...
    @property
    def dispatching(self) -> bool: ...
    def dispatch_loop(self) -> Union[None, bool, Awaitable[Any]]: ...
    def record_handler_error(self, error: BaseException) -> None: ...

class Server:
    """The reference Argus server, in this process until ``shutdown()``
    (or the end of a ``with`` block). Listens on a free loopback port
    unless ``port`` is given."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Optional[List[str]] = None,
        symbols: Optional[List[str]] = None,
        tick_interval: float = 0.1,
        seed: int = 42,
        firehose: bool = False,
        firehose_rate: Optional[int] = None,
        firehose_total: Optional[int] = None,
        session_ttl: float = 60.0,
        ping_interval: float = 15.0,
    ) -> None: ...
    @property
    def url(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def running(self) -> bool: ...
    def stats(self) -> Dict[str, int]: ...
    def drop_connections(self) -> int: ...
    def skip_seq(self) -> None: ...
    def go_silent(self) -> int: ...
    def end_silence(self) -> None: ...
    def refuse_next_connections(self, n: int) -> None: ...
    def disconnect_all(self, code: int = 1000, reason: str = "") -> int: ...
    def inject_text(self, text: str) -> int: ...
    def restart(self) -> None: ...
    def shutdown(self) -> None: ...
    def __enter__(self) -> "Server": ...
    def __exit__(self, *args: Any) -> None: ...

def check_connection_config(
    url: str,
    api_key: Optional[str],
    max_reconnect_attempts: int,
    reconnect_delay: float,
    heartbeat_interval: float,
    timeout: float,
    max_subscriptions: int,
) -> None: ...
def check_subscription_config(
    symbols: List[str],
    data_types: List[str],
    update_frequency: str,
    min_price: Optional[float] = None,
    max_price: Optional[float] = None,
) -> None: ...
