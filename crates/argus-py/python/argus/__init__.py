"""Argus: real-time market data over WebSocket, on a Rust engine.

The original SDK's API lives in :mod:`argus.websocket_client`
(``WebSocketClient``, ``ConnectionConfig``, ``SubscriptionConfig``,
``ConnectionState``, ``WebSocketClientManager``, ``QuickStartClient``).
:class:`Server` is the reference server, in-process.
"""

import atexit

from argus import _argus
from argus._argus import ArgusError, ConnectError, Server, SubscribeError, __version__

# The engine's I/O thread calls handlers: it must stop before the
# interpreter goes away.
atexit.register(_argus._at_exit)

__all__ = ["ArgusError", "ConnectError", "Server", "SubscribeError", "__version__"]
