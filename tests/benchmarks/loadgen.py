"""A small HTTP load generator for the benchmarks: threads and http.client, to 127.0.0.1 only.

    python -m tests.benchmarks.loadgen --port PORT --path /bench/bare [--seconds S] [--warmup S]
                                       [--concurrency C] [--processes P]

C threads in all, spread over P processes (this one and P - 1 forked), each send GET requests one
after another for ``--warmup`` seconds (not counted) and then for ``--seconds`` seconds (counted).
A connection is reused when the server keeps it open and opened again when it closes it
(gunicorn's sync workers close every connection). The ``Authorization`` header, when one is
needed, comes from the environment variable BENCH_AUTHORIZATION, not from the command line, so
that the token does not show in ``ps``.

It prints one JSON object: requests counted, requests per second, latency percentiles, the status
codes seen, errors, and the CPU time the client used. It runs in processes of its own so that
the client does not share an interpreter (and its GIL) with the code it measures, and so that
one GIL does not delay all its threads. Standard library only: it does not import Django.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

HOST = "127.0.0.1"  # never anything else: this is a benchmark client, not a load-testing tool


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class Worker(threading.Thread):
    def __init__(self, port: int, path: str, headers: dict[str, str], start_at: float, end_at: float) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.headers = port, path, headers
        self.start_at, self.end_at = start_at, end_at
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.connections = 0
        self.all_ok = 0  # 2xx answers, the warm-up's too: for CPU time per request

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            t0 = time.perf_counter()
            if t0 >= self.end_at:
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
                    self.connections += 1
                conn.request("GET", self.path, headers=self.headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                if t0 >= self.start_at:
                    self.errors += 1
                continue
            t1 = time.perf_counter()
            if 200 <= response.status < 300:
                self.all_ok += 1
            if response.will_close:
                conn.close()
                conn = None
            if t0 >= self.start_at and t1 <= self.end_at:
                self.latencies.append(t1 - t0)
                self.statuses[response.status] += 1
        if conn is not None:
            conn.close()


def _threads(
    port: int, path: str, headers: dict[str, str], start_at: float, end_at: float, threads: int
) -> dict[str, Any]:
    """One process's share: ``threads`` workers until ``end_at``; what they saw, merged."""
    workers = [Worker(port, path, headers, start_at, end_at) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    statuses: Counter[int] = Counter()
    for w in workers:
        statuses.update(w.statuses)
    return {
        "latencies": [lat for w in workers for lat in w.latencies],
        "statuses": statuses,
        "errors": sum(w.errors for w in workers),
        "connections": sum(w.connections for w in workers),
        "all_ok": sum(w.all_ok for w in workers),
    }


def _child(conn: Any, *args: Any) -> None:
    conn.send(_threads(*args))
    conn.close()


def run(port: int, path: str, *, seconds: float, warmup: float, concurrency: int, processes: int = 1) -> dict[str, Any]:
    """``concurrency`` threads in all, spread over ``processes`` processes, so that one GIL does not
    hold every client thread back (a slow client flatters the slower endpoint)."""
    headers = {"Accept": "application/json", "User-Agent": "identity-bench/1"}
    if os.environ.get("BENCH_AUTHORIZATION"):
        headers["Authorization"] = os.environ["BENCH_AUTHORIZATION"]
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    cpu0 = os.times()
    start_at = time.perf_counter() + warmup  # CLOCK_MONOTONIC: the same clock in the child processes
    end_at = start_at + seconds
    context = multiprocessing.get_context("fork")
    children = []
    for threads in shares[1:]:
        parent_end, child_end = context.Pipe(duplex=False)
        proc = context.Process(
            target=_child, args=(child_end, port, path, headers, start_at, end_at, threads), daemon=True
        )
        proc.start()
        children.append((proc, parent_end))
    parts = [_threads(port, path, headers, start_at, end_at, shares[0])]
    for proc, parent_end in children:
        parts.append(parent_end.recv())
        proc.join()
    cpu1 = os.times()  # after join: the children's CPU time is in children_user/children_system
    latencies = sorted(lat for part in parts for lat in part["latencies"])
    statuses: Counter[int] = Counter()
    for part in parts:
        statuses.update(part["statuses"])
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    cpu = sum(getattr(cpu1, f) - getattr(cpu0, f) for f in ("user", "system", "children_user", "children_system"))
    return {
        "path": path,
        "concurrency": concurrency,
        "processes": processes,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "requests": len(latencies),
        "ok": ok,
        "all_ok": sum(part["all_ok"] for part in parts),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": sum(part["errors"] for part in parts),
        "connections": sum(part["connections"] for part in parts),
        "rps": ok / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "client_cpu_s": cpu,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--path", required=True, help="request path, e.g. /bench/bare")
    parser.add_argument("--seconds", type=float, default=10.0, help="counted seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before counting starts (default 1)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads in all, one request each (default 4)")
    parser.add_argument("--processes", type=int, default=2, help="processes the threads are spread over (default 2)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or min(args.concurrency, args.processes) < 1 or args.path[:1] != "/":
        parser.error("--seconds must be > 0, --warmup >= 0, --concurrency and --processes >= 1, --path start with /")
    result = run(
        args.port,
        args.path,
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        processes=args.processes,
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
