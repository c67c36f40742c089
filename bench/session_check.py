"""What the ended-session check costs an authenticated request: one Redis EXISTS, made the
way the gateway makes it (messaging.revocations, one client per gateway process), against
its ceiling, a Redis PING on the same connection, measured in the same run.

It times the call itself rather than HTTP requests through the gateway: the difference it
makes is well under a millisecond, inside the noise of a whole request on 2 shared cores.
CPU is counted in this process (the gateway's side) and in redis-server (from /proc).

    python -m bench.session_check [--calls 20000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

from bench.common import cpu_seconds
from messaging.revocations import SessionRevocations

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def measure(name: str, call: object, calls: int) -> dict[str, float]:
    latencies = []
    before_cpu, before_process = cpu_seconds(), time.process_time()
    started = time.perf_counter()
    for _ in range(calls):
        sent = time.perf_counter()
        call()  # type: ignore[operator]
        latencies.append(time.perf_counter() - sent)
    wall = time.perf_counter() - started
    after_cpu, after_process = cpu_seconds(), time.process_time()
    redis_cpu = after_cpu.get("redis", 0.0) - before_cpu.get("redis", 0.0)
    latencies.sort()
    return {
        "name": name, "calls": calls, "per_second": calls / wall,
        "p50_us": statistics.median(latencies) * 1e6,
        "p99_us": latencies[int(calls * 0.99)] * 1e6,
        "caller_cpu_us": (after_process - before_process) / calls * 1e6,
        "redis_cpu_us": redis_cpu / calls * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    store = SessionRevocations(REDIS_URL)
    ended = [uuid.uuid4() for _ in range(100)]
    store.end(ended)  # a revocation set that is not empty
    live = str(uuid.uuid4())
    store.client.ping()  # connected before timing
    rows = [measure("ceiling: Redis PING", store.client.ping, args.calls),
            measure("session check (live session)", lambda: store.has_ended(live), args.calls),
            measure("session check (ended session)", lambda: store.has_ended(ended[0]),
                    args.calls)]
    print(f"\nsession_check: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"Redis at {REDIS_URL}")
    print(f"{'figure':32} {'calls/s':>9} {'p50 µs':>8} {'p99 µs':>8} {'caller CPU µs':>14} "
          f"{'redis CPU µs':>13} {'x ceiling':>10}")
    ceiling = rows[0]
    for row in rows:
        cost = row["caller_cpu_us"] + row["redis_cpu_us"]
        ratio = cost / (ceiling["caller_cpu_us"] + ceiling["redis_cpu_us"])
        print(f"{row['name']:32} {row['per_second']:9.0f} {row['p50_us']:8.0f} "
              f"{row['p99_us']:8.0f} {row['caller_cpu_us']:14.1f} {row['redis_cpu_us']:13.1f} "
              f"{ratio:10.2f}")
    print("command: " + " ".join(["python", "-m", "bench.session_check", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
