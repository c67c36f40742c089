"""What one guest checkout costs the whole system, everything it causes included: CPU ms per
process, database transactions per service, and the rate the box sustains with every
confirmation email accepted by SMTP, next to the gateway's one-RPC ceiling of the same run.

    python -m bench.checkout_cost [--seconds 20] [--connections 8 32] [--profile DIR]

The system runs as `make run` starts it (log level INFO), but on PostgreSQL (one database per
service) with mail to a local SMTP sink (aiosmtpd, in this process). wrk (compiled: it does
not steal the CPU it measures) sends guest checkouts of 1 of 50 products, each with its own
email and Idempotency-Key, as a storefront does. For each connection count:

- the ceiling: wrk on a gateway route doing one no-op RPC;
- the checkouts: CPU of every process (from /proc: gateway, each service, PostgreSQL,
  RabbitMQ, Redis, honcho) and `pg_stat_database.xact_commit` of each service's database, from the
  start of the load until the last of its emails is accepted by SMTP, divided by the
  checkouts answered 201. The sustained rate is those checkouts over that same span.

PostgreSQL publishes a backend's transaction counts within 10 s of it going idle, so the
counts are read after the system has been quiet for 11 s; what the system does on its own
meanwhile (timers: the relay's poll, sweeps) is measured first and subtracted.

With --profile DIR, py-spy samples each Python process of the system during the first load
and writes DIR/<part>-<pid>.txt (collapsed stacks) plus DIR/summary.txt, the functions where
each process spends its time. Only samples holding the GIL count (py-spy --gil): time a
green thread waits on a socket is not CPU, and without it py-spy charges that wait to the
C call that started it (psycopg2's execute looked like a third of every service). py-spy's
own CPU inflates the figures, so profile and measure in separate runs.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from bench.checkout import seed_products
from bench.common import Figure, cpu_seconds, processes, report, running_system, wrk
from harness.system import System

CHECKOUT_SCRIPT = """
function init(args)
  codes = {}
  n = 0
  math.randomseed(os.time() * 100 + tag)
  run = math.random(1, 1000000000)
end
request = function()
  n = n + 1
  local body = string.format('{"email": "cost-%d-%d-%d@example.com", "lines": [{"sku": ' ..
    '"BENCH-%03d", "quantity": 1}], "shipping_address": {"first_name": "Bench", ' ..
    '"last_name": "Mark", "line1": "Calle 1", "city": "Madrid", "postal_code": "28001", ' ..
    '"country": "ES"}}', run, tag, n, math.random(0, 49))
  local headers = {["Content-Type"] = "application/json",
                   ["Idempotency-Key"] = string.format("cost-%d-%d-%d", run, tag, n)}
  return wrk.format("POST", "/api/v1/checkout", headers, body)
end
"""

NOOP_RPC_SCRIPT = """
function init(args)
  codes = {}
end
request = function()
  return wrk.format("GET", "/_bench/noop-rpc")
end
"""

# The parts of the system; the bench's own process (load accounting, SMTP sink) is not one.
SYSTEM_PARTS = ("gateway", "identity", "customers", "orders", "notifications", "postgresql",
                "rabbitmq", "redis", "honcho")
DATABASES = ("identity", "customers", "orders", "notifications")
STATS_DELAY = 11.0  # PostgreSQL's idle backends publish their counts within 10 s


class Commits:
    """Committed transactions of each service's database, from pg_stat_database."""

    def __init__(self, system: System) -> None:
        self.names = {service: create_engine(url).url.database
                      for service, url in system.database_urls.items()}
        admin_url = create_engine(system.database_urls["orders"]).url.set(database="postgres")
        self.engine = create_engine(admin_url)

    def read(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT datname, xact_commit FROM pg_stat_database "
                "WHERE datname = ANY(:names)"), {"names": list(self.names.values())}).all()
        counts = dict(rows)
        return {service: int(counts[name]) for service, name in self.names.items()}

    def settled(self) -> tuple[dict[str, int], float]:
        """The counts once everything before now is published, and when "now" was."""
        now = time.monotonic()
        time.sleep(STATS_DELAY)
        return self.read(), now


def batch_totals(system: System) -> dict[str, tuple[float, float]]:
    """Per service and batch handler, (batches, events) so far, from the services' /metrics
    (``clientela_event_batch_events``): what the consumers' linger buys under this load."""
    totals: dict[str, tuple[float, float]] = {}
    for service in DATABASES:
        address = system.env[f"{service.upper()}_WEB_ADDRESS"]
        body = requests.get(f"http://{address}/metrics", timeout=10).text
        for family in text_string_to_metric_families(body):
            if family.name != "clientela_event_batch_events":
                continue
            for sample in family.samples:
                name = f"{service} {sample.labels['handler']}"
                batches, events = totals.get(name, (0.0, 0.0))
                if sample.name.endswith("_count"):
                    totals[name] = (batches + sample.value, events)
                elif sample.name.endswith("_sum"):
                    totals[name] = (batches, events + sample.value)
    return totals


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wait_for_mail(system: System, count: int, timeout: float = 300.0) -> None:
    sink = system.smtp  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while len(sink.messages) < count:
        if time.monotonic() > deadline:
            sys.exit(f"only {len(sink.messages)} of {count} emails arrived in {timeout:.0f} s")
        time.sleep(0.05)


PYTHON_PARTS = ("gateway", "identity", "customers", "orders", "notifications")


def start_profiles(directory: Path, seconds: float) -> list[subprocess.Popen]:
    """py-spy on every Python process of the system, for the next `seconds`."""
    directory.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen(
        ["py-spy", "record", "--gil", "--nonblocking", "--format", "raw", "--rate", "200",
         "--duration", str(int(seconds)), "--pid", str(pid),
         "--output", str(directory / f"{part}-{pid}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for pid, part in processes().items() if part in PYTHON_PARTS]


def summarise_profiles(directory: Path, top: int = 40) -> None:
    """Per process: the share of samples where each function is on the stack (inclusive)
    and on top (self), so a reader sees where the CPU goes without a flame graph viewer."""
    lines: list[str] = []
    for path in sorted(directory.glob("*-*.txt")):
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        total = 0
        for row in path.read_text().splitlines():
            stack, _, count = row.rpartition(" ")
            if not count.isdigit():
                continue
            # A function, not a line: "name (package/module.py)".
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
            total += int(count)
            for frame in set(frames):
                inclusive[frame] += int(count)
            own[frames[-1]] += int(count)
        if not total:
            continue
        lines.append(f"== {path.stem}: {total} samples")
        lines += [f"  {100 * n / total:5.1f}% incl  {frame}"
                  for frame, n in inclusive.most_common(top)]
        lines += [f"  {100 * n / total:5.1f}% self  {frame}" for frame, n in own.most_common(top)]
    (directory / "summary.txt").write_text("\n".join(lines) + "\n")
    print(f"profiles: {directory}/summary.txt")


def measure(system: System, commits: Commits, connections: int, seconds: float,
            idle_commits_per_s: dict[str, float], idle_cpu_per_s: dict[str, float],
            profile: Path | None = None) -> tuple[list[Figure], dict[str, str]]:
    ceiling_cpu_before, ceiling_started = cpu_seconds(), time.monotonic()
    ceiling = wrk(system.url, NOOP_RPC_SCRIPT, connections, max(seconds / 2, 5))
    ceiling_cpu, ceiling_span = cpu_seconds(), time.monotonic() - ceiling_started
    # The machine's speed in this run: what one no-op RPC through the gateway costs.
    noop_rpc_ms = 1000 * sum(
        ceiling_cpu.get(part, 0.0) - ceiling_cpu_before.get(part, 0.0)
        - idle_cpu_per_s.get(part, 0.0) * ceiling_span
        for part in SYSTEM_PARTS) / max(sum(ceiling.codes.values()), 1)
    counts_before, _ = commits.settled()
    mails_before = len(system.smtp.messages)  # type: ignore[attr-defined]
    profilers = start_profiles(profile, seconds) if profile else []
    batches_before = batch_totals(system)
    cpu_before, wrk_before, started = cpu_seconds(), _children_cpu(), time.monotonic()
    run = wrk(system.url, CHECKOUT_SCRIPT, connections, seconds)
    placed = run.codes.get(201, 0)
    _wait_for_mail(system, mails_before + placed)
    span = time.monotonic() - started
    cpu_after, wrk_cpu = cpu_seconds(), _children_cpu() - wrk_before
    batches_after = batch_totals(system)
    counts_after, _ = commits.settled()
    for profiler in profilers:
        profiler.wait()
    if profile:
        summarise_profiles(profile)

    per_checkout = {part: 1000 * (cpu_after.get(part, 0.0) - cpu_before.get(part, 0.0)
                                  - idle_cpu_per_s.get(part, 0.0) * span) / max(placed, 1)
                    for part in SYSTEM_PARTS}
    transactions = {db: (counts_after[db] - counts_before[db]
                         - idle_commits_per_s[db] * (span + STATS_DELAY)) / max(placed, 1)
                    for db in DATABASES}
    sustained = placed / span
    others = {code: n for code, n in run.codes.items() if code != 201}
    figures = [
        Figure(f"ceiling: one no-op RPC (c={connections})", sum(ceiling.codes.values()),
               sum(n for code, n in ceiling.codes.items() if code != 200), ceiling.seconds,
               ceiling.per_second(200), ceiling.p50_ms, ceiling.p99_ms, connections),
        Figure(f"checkouts, every email sent (c={connections})", placed, sum(others.values()),
               round(span, 1), round(sustained, 1), run.p50_ms, run.p99_ms, connections),
    ]
    c = f"c={connections}"
    notes = {
        f"{c} CPU ms per checkout": f"{sum(per_checkout.values()):.1f} in all: " + ", ".join(
            f"{part} {ms:.1f}" for part, ms in sorted(per_checkout.items(),
                                                      key=lambda item: -item[1])),
        f"{c} transactions per checkout": f"{sum(transactions.values()):.1f} in all: " +
        ", ".join(f"{db} {n:.1f}" for db, n in transactions.items()),
        f"{c} events per batch": ", ".join(
            f"{name} {(events - batches_before.get(name, (0, 0))[1]) / batches_run:.1f}"
            for name, (batches, events) in sorted(batches_after.items())
            if (batches_run := batches - batches_before.get(name, (0, 0))[0]) > 0)
        or "no batches",
        f"{c} ratio to the ceiling": f"{sustained / max(ceiling.per_second(200), 0.1):.2f}",
        f"{c} CPU of one no-op RPC (this run)": (
            f"{noop_rpc_ms:.2f} ms in all: a checkout costs "
            f"{sum(per_checkout.values()) / max(noop_rpc_ms, 0.01):.1f} of them"),
        f"{c} answers": f"{placed} placed (201) in {run.seconds} s of load, all emailed "
                        f"{span:.1f} s after it began; other answers {others or 'none'}",
        f"{c} wrk's own CPU": f"{1000 * wrk_cpu / max(placed, 1):.1f} ms per checkout "
                              "(not counted above)",
    }
    return figures, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy each Python process during the first load into DIR")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk drives this benchmark's load: apt-get install wrk")

    # As `make run` runs it: INFO logs, the relay's idle sweep at its default 1 s (the test
    # harness sweeps every 0.3 s).
    with running_system(BENCH_ROUTES="1", LOG_LEVEL="INFO", OUTBOX_POLL_SECONDS="1.0") as system:
        seed_products(system)
        commits = Commits(system)
        # Warm up (first connections, imports, caches), then what the system does alone.
        warm_up = wrk(system.url, CHECKOUT_SCRIPT, 4, 3)
        _wait_for_mail(system, warm_up.codes.get(201, 0))
        idle_from, idle_at = commits.settled()
        idle_cpu_from = cpu_seconds()
        idle_to, idle_end = commits.settled()
        idle_seconds = idle_end - idle_at
        idle_cpu = {part: (seconds - idle_cpu_from.get(part, 0.0)) / idle_seconds
                    for part, seconds in cpu_seconds().items()}
        idle_commits = {db: (idle_to[db] - idle_from[db]) / idle_seconds for db in DATABASES}
        figures: list[Figure] = []
        notes: dict[str, str] = {
            "system alone (subtracted)": ", ".join(
                f"{db} {n:.2f} transactions/s" for db, n in idle_commits.items()) + "; " +
            f"{1000 * sum(idle_cpu.get(p, 0.0) for p in SYSTEM_PARTS):.0f} CPU ms/s"}
        for index, connections in enumerate(args.connections):
            more_figures, more_notes = measure(system, commits, connections, args.seconds,
                                               idle_commits, idle_cpu,
                                               args.profile if index == 0 else None)
            figures += more_figures
            notes.update(more_notes)
        commits.engine.dispose()
    notes["setup"] = (f"{os.cpu_count()} cores; gateway gunicorn 2 workers; wrk -t2; "
                      "guest checkouts of 1 of 50 products, one Idempotency-Key each")
    report("checkout_cost", figures, notes)


if __name__ == "__main__":
    main()
