"""Argus: real-time market data over WebSocket, on a Rust engine.

The original SDK's API lives in :mod:`argus.websocket_client`
(``WebSocketClient``, ``ConnectionConfig``, ``SubscriptionConfig``,
``ConnectionState``, ``WebSocketClientManager``, ``QuickStartClient``).
:class:`Server` is the reference server, in-process.
"""

from argus._argus import ArgusError, ConnectError, Server, SubscribeError, __version__

__all__ = ["ArgusError", "ConnectError", "Server", "SubscribeError", "__version__"]
