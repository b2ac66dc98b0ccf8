"""The original SDK's custom message processor: async handlers that keep
price and volume caches and raise alerts.

    python python/examples/custom_processor.py [--seconds 10]
"""

import asyncio

from _feed import feed, parse_args

from argus.websocket_client import ConnectionConfig, SubscriptionConfig, WebSocketClient


class DataProcessor:
    def __init__(self):
        self.price_cache = {}
        self.volume_cache = {}
        self.alerts = 0

    async def handle_price(self, data):
        symbol = data["symbol"]
        price = data["price"]
        self.price_cache[symbol] = price

        if self.should_alert(symbol, price):
            await self.send_alert(symbol, price)

    async def handle_volume(self, data):
        symbol = data["symbol"]
        volume = data["volume"]
        self.volume_cache[symbol] = volume

    def should_alert(self, symbol, price):
        # Custom alert logic
        return price > 200

    async def send_alert(self, symbol, price):
        self.alerts += 1
        print(f"price alert: {symbol} reached ${price}")


async def main(url: str, api_key, seconds: float) -> None:
    processor = DataProcessor()

    config = ConnectionConfig(url=url, api_key=api_key)
    client = WebSocketClient(config)

    # Add the custom handlers
    client.add_message_handler("price", processor.handle_price)
    client.add_message_handler("volume", processor.handle_volume)

    if await client.connect():
        # Subscribe
        sub_config = SubscriptionConfig(
            symbols=["AAPL", "GOOGL", "TSLA"], data_types=["price", "volume"]
        )
        await client.subscribe("main_subscription", sub_config)

        # Run the event loop
        try:
            await asyncio.sleep(seconds)
        finally:
            await client.disconnect()
    else:
        print(f"could not connect: {client.last_error}")

    print(f"prices:  {processor.price_cache}")
    print(f"volumes: {processor.volume_cache}")
    print(f"alerts:  {processor.alerts}")


if __name__ == "__main__":
    args = parse_args("Async handlers with caches and alerts.", seconds=300)
    with feed() as (url, api_key):
        asyncio.run(main(url, api_key, args.seconds))
