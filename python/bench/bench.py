"""Argus from Python against pure-Python clients, on one firehose.

Three consumers, each in a process of its own, each with a synchronous
handler that reads ``price``:

- ``argus``: this package (the seed's API: ``add_message_handler("price", ...)``);
- ``websockets``: a pure-Python client, ``websockets`` + ``json.loads``;
- ``orjson-uvloop``: the same with ``orjson.loads`` on ``uvloop``.

The feed is the reference server's firehose (``argus.Server(firehose=True)``)
in a process of its own. Run through ``python/bench/run.sh``, which makes
the bench's virtual environment (a release build of the extension, plus
websockets, orjson and uvloop) and prints the tables for BENCHMARKS.md.

    python bench.py [--messages 500000] [--runs 3] [--rate 50000] [--seconds 5] [--pin]

With ``--pin`` the server runs on CPU 0 and every consumer on CPU 1, the
way a latency-sensitive feed handler is deployed: the paced server spins on
its core, and the consumer has the other to itself, but for what the
operating system puts there. Every latency run reports that as the time its
threads waited on the run queue (``/proc/self/task/*/schedstat``) during the
measured window, and how many messages arrived more than a millisecond late.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "NVDA"]
#: With ``--pin``: the server's CPU and the consumers' CPU.
SERVER_CPU, CONSUMER_CPU = 0, 1
CONSUMERS = ["argus", "websockets", "orjson-uvloop"]


def run_queue_wait_ns() -> int:
    """Nanoseconds this process's threads have spent runnable but not
    running (the second field of each thread's ``schedstat``)."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total


def parse_ns(timestamp: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 UTC timestamp."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


class Recorder:
    """The handler every consumer calls: reads ``price``; in a latency run,
    records server-timestamp-to-handler delays after a warm-up."""

    def __init__(self, count: int, latency: bool, warmup: int) -> None:
        self.count = count
        self.latency = latency
        self.warmup = warmup
        self.seen = 0
        self.total = 0.0
        self.delays = []
        self.first = None
        self.last = None
        self.cpu_first = None
        self.cpu_last = None
        self.done = asyncio.Event()
        #: Sets ``done``: from another thread, through the loop.
        self.finish = self.done.set
        #: Events the client reported it had to skip (``lagged``): argus only.
        self.missed = 0
        self._ts = None
        self._ts_ns = 0
        self._wait_start = 0
        self._wait_end = 0

    def __call__(self, data) -> None:
        self.total += data["price"]
        self.seen += 1
        if self.seen == 1:
            self.first = time.perf_counter()
            self.cpu_first = time.process_time()
        if self.latency and self.seen > self.warmup:
            if self.seen == self.warmup + 1:
                self._wait_start = run_queue_wait_ns()
            ts = data["timestamp"]
            if ts != self._ts:
                self._ts, self._ts_ns = ts, parse_ns(ts)
            self.delays.append(time.time_ns() - self._ts_ns)
        if self.seen == self.count:
            self.last = time.perf_counter()
            self.cpu_last = time.process_time()
            if self.latency:
                self._wait_end = run_queue_wait_ns()
            self.finish()

    def result(self) -> dict:
        span = self.last - self.first
        messages = self.count - 1
        out = {
            "msgs_per_s": messages / span,
            "cpu_us_per_msg": (self.cpu_last - self.cpu_first) / messages * 1e6,
            "cpu_share": (self.cpu_last - self.cpu_first) / span,
            "missed": self.missed,
        }
        if self.delays:
            delays = sorted(self.delays)
            out["p50_us"] = delays[len(delays) // 2] / 1000
            out["p99_us"] = delays[int(len(delays) * 0.99)] / 1000
            out["late_1ms"] = sum(1 for d in delays if d > 1_000_000)
            out["run_queue_wait_ms"] = (self._wait_end - self._wait_start) / 1e6
        return out


async def run_argus(url: str, recorder: Recorder) -> None:
    from argus.websocket_client import ConnectionConfig, SubscriptionConfig, WebSocketClient

    client = WebSocketClient(ConnectionConfig(url=url))
    # A plain-function handler runs on the engine's I/O thread: the loop's
    # event is set through the loop.
    loop = asyncio.get_running_loop()
    recorder.finish = lambda: loop.call_soon_threadsafe(recorder.done.set)
    client.add_message_handler("price", recorder)

    def lagged(event) -> None:
        recorder.missed += event["missed"]

    client.add_message_handler("lagged", lagged)
    if not await client.connect():
        raise SystemExit(f"argus: could not connect: {client.last_error}")
    await client.subscribe("bench", SubscriptionConfig(symbols=SYMBOLS, data_types=["price"]))
    await recorder.done.wait()
    await client.disconnect()


async def run_websockets(url: str, recorder: Recorder, loads) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, subprotocols=["argus.v1"], max_size=1 << 20) as ws:
        welcome = loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        await ws.send(
            json.dumps({"op": "subscribe", "id": "bench", "symbols": SYMBOLS, "data_types": ["price"]})
        )
        async for text in ws:
            message = loads(text)
            if message["type"] == "price":
                recorder(message)
                if recorder.done.is_set():
                    return


def consumer(args: argparse.Namespace) -> None:
    if args.pin:
        # Before the client's I/O thread exists: it inherits the mask.
        os.sched_setaffinity(0, {CONSUMER_CPU})
    recorder = Recorder(args.count, args.latency, args.warmup)
    if args.kind == "argus":
        asyncio.run(run_argus(args.url, recorder))
    elif args.kind == "websockets":
        asyncio.run(run_websockets(args.url, recorder, json.loads))
    else:
        import orjson
        import uvloop

        uvloop.install()
        asyncio.run(run_websockets(args.url, recorder, orjson.loads))
    print(json.dumps(recorder.result()))


SERVER = """
import os, sys
if {pin}:
    os.sched_setaffinity(0, {{{cpu}}})
import argus
server = argus.Server(firehose=True, firehose_rate={rate}, tick_interval=1.0)
print(server.url, flush=True)
sys.stdin.read()
server.shutdown()
"""


def start_server(rate, pin: bool) -> "tuple[subprocess.Popen, str]":
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(rate=rate, pin=pin, cpu=SERVER_CPU)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return process, process.stdout.readline().strip()


def measure(kind: str, url: str, count: int, latency: bool, warmup: int, pin: bool) -> dict:
    out = subprocess.run(
        [
            sys.executable, __file__, "consumer", "--kind", kind, "--url", url,
            "--count", str(count), "--warmup", str(warmup), *(["--latency"] if latency else []),
            *(["--pin"] if pin else []),
        ],
        capture_output=True, text=True, timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} consumer failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    """The machine's load averages (1, 5, 15 min): what else ran."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main(args: argparse.Namespace) -> None:
    placement = f"server on CPU {SERVER_CPU}, consumers on CPU {CONSUMER_CPU}" if args.pin else "not pinned"
    print(f"python {sys.version.split()[0]}; {args.runs} runs, interleaved; medians; {placement}", file=sys.stderr)
    load_log = [load()]
    server, url = start_server("None", args.pin)
    throughput = {k: [] for k in CONSUMERS}
    try:
        for run in range(args.runs):
            for kind in CONSUMERS:
                result = measure(kind, url, args.messages, False, 0, args.pin)
                throughput[kind].append(result)
                print(f"throughput run {run + 1} {kind}: {result}", file=sys.stderr)
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    load_log.append(load())
    server, url = start_server(args.rate, args.pin)
    paced = {k: [] for k in CONSUMERS}
    count = int(args.rate * args.seconds)
    try:
        for run in range(args.runs):
            for kind in CONSUMERS:
                result = measure(kind, url, count, True, args.rate // 2, args.pin)
                paced[kind].append(result)
                print(f"paced run {run + 1} {kind}: {result}", file=sys.stderr)
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    load_log.append(load())

    def median(results, key):
        return statistics.median(r[key] for r in results)

    print(f"Processes: {placement}. Load average (1 / 5 / 15 min) at the start, between the parts, at the end: {'; '.join(load_log)}.\n")

    base = median(throughput["websockets"], "msgs_per_s")
    fast = median(throughput["orjson-uvloop"], "msgs_per_s")
    print(f"### Throughput ({args.messages:,} price messages a run, {args.runs} runs, interleaved)\n")
    print("| consumer | msg/s median | min – max | vs websockets+json | vs orjson+uvloop | CPU µs per msg | skipped (lagged) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in CONSUMERS:
        rates = [r["msgs_per_s"] for r in throughput[kind]]
        m = statistics.median(rates)
        print(
            f"| {LABELS[kind]} | {m / 1e3:,.0f}k | {min(rates) / 1e3:,.0f}k – {max(rates) / 1e3:,.0f}k "
            f"| {m / base:.2f}× | {m / fast:.2f}× | {median(throughput[kind], 'cpu_us_per_msg'):.2f} "
            f"| {median(throughput[kind], 'missed'):,.0f} |"
        )
    print(f"\n### Latency at {args.rate:,} msg/s paced, server timestamp to handler ({args.seconds:g} s a run, first half second skipped, {args.runs} runs)\n")
    print(
        "| consumer | p50 µs | p99 µs | p99 vs websockets+json | CPU % of a core | CPU µs per msg "
        "| skipped (lagged) | run-queue wait ms | > 1 ms late |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base_p99 = median(paced["websockets"], "p99_us")
    for kind in CONSUMERS:
        p99 = median(paced[kind], "p99_us")
        print(
            f"| {LABELS[kind]} | {median(paced[kind], 'p50_us'):,.0f} | {p99:,.0f} | {p99 / base_p99:.2f}× "
            f"| {median(paced[kind], 'cpu_share') * 100:.0f} | {median(paced[kind], 'cpu_us_per_msg'):.2f} "
            f"| {median(paced[kind], 'missed'):,.0f} | {median(paced[kind], 'run_queue_wait_ms'):.1f} "
            f"| {median(paced[kind], 'late_1ms'):,.0f} |"
        )
    print("\np99 µs run by run (run-queue wait ms):")
    for kind in CONSUMERS:
        runs = ", ".join(f"{r['p99_us']:,.0f} ({r['run_queue_wait_ms']:.1f})" for r in paced[kind])
        print(f"- {LABELS[kind]}: {runs}")
    ratios = [a["p99_us"] / b["p99_us"] for a, b in zip(paced["argus"], paced["websockets"])]
    print(f"- argus / websockets+json p99, run by run: {', '.join(f'{r:.2f}×' for r in ratios)}")


LABELS = {
    "argus": "argus (this package, seed API, sync handler)",
    "websockets": "websockets + json.loads",
    "orjson-uvloop": "websockets + orjson.loads + uvloop",
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("consumer")
    one.add_argument("--kind", choices=CONSUMERS, required=True)
    one.add_argument("--url", required=True)
    one.add_argument("--count", type=int, required=True)
    one.add_argument("--warmup", type=int, default=0)
    one.add_argument("--latency", action="store_true")
    one.add_argument("--pin", action="store_true")
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pin", action="store_true", help="server on CPU 0, consumers on CPU 1")
    arguments = parser.parse_args()
    if arguments.command == "consumer":
        consumer(arguments)
    else:
        main(arguments)
