"""The original SDK's robust client: reconnects and keeps its subscription.

Against the in-process server, the example also cuts every connection
half-way through: Argus reconnects, resumes the session and replays what
was missed (watch the `resumed` and `gap` lines, and `reconnect_count`).

    python python/examples/robust_client.py [--seconds 10]
"""

import asyncio
import os

from _feed import feed, parse_args

import argus
from argus.websocket_client import ConnectionConfig, SubscriptionConfig, WebSocketClient


class RobustClient:
    def __init__(self, url, api_key=None):
        self.config = ConnectionConfig(
            url=url,
            api_key=api_key,
            max_reconnect_attempts=10,
            reconnect_delay=2.0,
            heartbeat_interval=15,
        )
        self.client = WebSocketClient(self.config)
        self.received = 0
        self.handlers_set = False

    async def start(self):
        while True:
            try:
                if await self.client.connect():
                    # Set the message handlers
                    self.setup_handlers()

                    # Subscribe again
                    await self.resubscribe()

                    # Wait for the connection
                    await self.client.wait_for_connection()

                    # Read the statistics
                    stats = await self.client.get_stats()
                    print(f"connected: {stats}")

                    # Run until disconnected
                    while self.client.state.value == "connected":
                        await asyncio.sleep(1)

                else:
                    print("connection failed, retrying...")
                    await asyncio.sleep(5)

            except Exception as e:
                print(f"error: {e}")
                await asyncio.sleep(5)

    def setup_handlers(self):
        # Argus keeps handlers across reconnects: register them once.
        if self.handlers_set:
            return
        self.handlers_set = True

        def handle_data(data):
            self.received += 1
            if self.received % 25 == 1:
                print(f"data received: {data}")

        def handle_event(event):
            print(f"event: {event}")

        self.client.add_message_handler("price", handle_data)
        self.client.add_message_handler("volume", handle_data)
        for kind in ("gap", "resumed", "disconnected", "reconnecting"):
            self.client.add_message_handler(kind, handle_event)

    async def resubscribe(self):
        # Argus restores its subscriptions after a reconnect by itself; a
        # subscription that is still there is not made twice.
        config = SubscriptionConfig(symbols=["AAPL", "GOOGL"], data_types=["price"])
        try:
            await self.client.subscribe("main", config)
        except ValueError as e:
            print(f"kept: {e}")


async def main(url, api_key, seconds, server=None):
    robust_client = RobustClient(url, api_key)
    task = asyncio.ensure_future(robust_client.start())
    try:
        if server is not None:
            await asyncio.sleep(seconds / 2)
            print(f"cutting {server.drop_connections()} connection(s)")
            await asyncio.sleep(seconds / 2)
        else:
            await asyncio.sleep(seconds)
    finally:
        task.cancel()
        stats = await robust_client.client.get_stats()
        print(
            f"done: {robust_client.received} messages, "
            f"reconnect_count={stats['reconnect_count']}, gaps={stats['gaps']}"
        )
        await robust_client.client.disconnect()


if __name__ == "__main__":
    args = parse_args("A client that survives dropped connections.", seconds=20)
    if os.environ.get("ARGUS_URL"):
        with feed() as (url, api_key):
            asyncio.run(main(url, api_key, args.seconds))
    else:
        with argus.Server(api_keys=["api_key"], tick_interval=0.05) as server:
            asyncio.run(main(server.url, "api_key", args.seconds, server))
