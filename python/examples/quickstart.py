"""The original SDK's quick start: live prices of three stocks.

    python python/examples/quickstart.py [--seconds 10]
"""

import asyncio

from _feed import feed, parse_args

from argus.websocket_client import QuickStartClient


async def main(url: str, api_key, seconds: float) -> None:
    # Create the client
    client = await QuickStartClient.create(url, api_key)

    # Connect to the server
    if await client.connect():
        print("connected")

        # A data handler
        def on_price_update(data):
            print(f"price update: {data}")

        # Subscribe to stock data
        sub_id = await QuickStartClient.subscribe_stocks(
            client, ["AAPL", "GOOGL", "MSFT"], on_price_update
        )
        print(f"subscribed as {sub_id}")

        # Keep the connection running
        try:
            await asyncio.sleep(seconds)
        finally:
            await client.disconnect()
    else:
        print(f"could not connect: {client.last_error}")


if __name__ == "__main__":
    args = parse_args("Live prices of AAPL, GOOGL and MSFT.", seconds=60)
    with feed() as (url, api_key):
        asyncio.run(main(url, api_key, args.seconds))
