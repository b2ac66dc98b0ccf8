"""What the examples share: the --seconds flag, and where the feed comes from.

With ARGUS_URL unset, each example starts the reference server in-process
(argus.Server) on a free loopback port; set ARGUS_URL (and ARGUS_API_KEY if
the server wants one) to use another server.
"""

import argparse
import contextlib
import os
from typing import Iterator, List, Optional, Tuple

import argus


def parse_args(description: str, seconds: float) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--seconds", type=float, default=seconds, help=f"how long to run (default {seconds})"
    )
    return parser.parse_args()


@contextlib.contextmanager
def feeds(keys: List[Optional[str]]) -> Iterator[List[Tuple[str, Optional[str]]]]:
    """One (url, api_key) per entry of ``keys``: ARGUS_URL and ARGUS_API_KEY
    when set, else an in-process server each, accepting that key."""
    url = os.environ.get("ARGUS_URL")
    if url:
        yield [(url, os.environ.get("ARGUS_API_KEY"))] * len(keys)
        return
    servers = [argus.Server(api_keys=[k] if k else None) for k in keys]
    try:
        yield [(s.url, k) for s, k in zip(servers, keys)]
    finally:
        for server in servers:
            server.shutdown()


@contextlib.contextmanager
def feed(api_key: Optional[str] = None) -> Iterator[Tuple[str, Optional[str]]]:
    """One (url, api_key): see :func:`feeds`."""
    with feeds([api_key]) as (only,):
        yield only
