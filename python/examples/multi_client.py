"""The original SDK's multi-client app: three clients, each with its own
server and key, one price handler, and a monitor printing every client's
statistics until --seconds have passed.

    python python/examples/multi_client.py [--seconds 10] [--interval 2]
"""

import argparse
import asyncio
import os

from _feed import feeds

from argus.websocket_client import ConnectionConfig, WebSocketClientManager


class MultiClientApp:
    def __init__(self, endpoints, interval):
        self.manager = WebSocketClientManager()
        self.endpoints = endpoints
        self.interval = interval
        self.prices = 0

    async def setup_clients(self):
        # Clients with different configs
        configs = [ConnectionConfig(url, key) for url, key in self.endpoints]

        for i, config in enumerate(configs):
            client = self.manager.create_client(f"client_{i}", config)

            # Set the handler
            client.add_message_handler("price", self.handle_price)

            # Connect
            await client.connect()

            # Subscribe
            from argus.websocket_client import SubscriptionConfig

            sub_config = SubscriptionConfig(symbols=["AAPL"], data_types=["price"])
            await client.subscribe(f"sub_{i}", sub_config)

    def handle_price(self, data):
        self.prices += 1
        print(f"price update: {data}")

    async def monitor_stats(self):
        while True:
            stats = await self.manager.get_all_stats()
            print("=== client statistics ===")
            for client_id, stat in stats.items():
                print(f"{client_id}: {stat}")

            await asyncio.sleep(self.interval)

    async def run(self, seconds):
        await self.setup_clients()
        try:
            await asyncio.wait_for(self.monitor_stats(), seconds)
        except asyncio.TimeoutError:
            pass
        finally:
            await self.manager.close_all()
        print(f"done: {self.prices} price updates over {len(self.endpoints)} clients")


async def main(endpoints, seconds, interval):
    app = MultiClientApp(endpoints, interval)
    await app.run(seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Three clients under one manager.")
    parser.add_argument("--seconds", type=float, default=90, help="how long to run (default 90)")
    parser.add_argument(
        "--interval", type=float, default=30, help="seconds between statistics (default 30)"
    )
    args = parser.parse_args()
    keys = [None] * 3 if os.environ.get("ARGUS_URL") else ["key1", "key2", "key3"]
    with feeds(keys) as endpoints:
        asyncio.run(main(endpoints, args.seconds, min(args.interval, args.seconds)))
