"""Shared benchmark plumbing: a system on PostgreSQL started like `make run`, a load loop."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from harness.infra import amqp_uri_for, postgres_databases, rabbit_vhost
from harness.smtp import SmtpSink
from harness.system import OWNER_EMAIL, OWNER_PASSWORD, System

SERVICES = ("identity", "customers", "orders", "notifications")
# The peak RSS (MiB) of one process of each part during the last running_system: report()
# prints it with every benchmark's figures.
LAST_PEAKS: dict[str, float] = {}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    name: str
    requests: int
    errors: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    concurrency: int


@contextmanager
def running_system(**env: str) -> Iterator[System]:
    """The whole system on PostgreSQL and its own vhost, mail to a local SMTP sink."""
    sink = SmtpSink().start()
    with rabbit_vhost("clientela_bench") as vhost, postgres_databases(*SERVICES) as urls:
        workdir = Path(tempfile.mkdtemp(prefix="clientela-bench-"))
        system = System(workdir, amqp_uri_for(vhost), urls, sink.url,
                        {"LOG_LEVEL": "WARNING", "GATEWAY_WORKERS": "2", **env}).start()
        system.smtp = sink  # type: ignore[attr-defined]
        peaks = PeakRss().start()  # every benchmark reports each part's peak memory
        try:
            yield system
        finally:
            peaks.stop()
            LAST_PEAKS.clear()
            LAST_PEAKS.update(peaks.peaks)
            system.stop()
            sink.stop()


def owner_headers(system: System) -> dict[str, str]:
    """The store owner's Authorization header (the owner `make run` creates)."""
    token = requests.post(system.api("/admin/auth/login"), timeout=10, json={
        "email": OWNER_EMAIL, "password": OWNER_PASSWORD}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def load(name: str, call: Callable[[requests.Session, int], bool], concurrency: int,
         seconds: float, warmup: float = 1.0) -> Figure:
    """Run ``call`` from ``concurrency`` threads for ``seconds``; latency of each call."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start_at = time.monotonic() + warmup
    stop_at = start_at + seconds

    def worker(index: int) -> None:
        nonlocal errors
        session = requests.Session()
        i = 0
        while True:
            begun = time.monotonic()
            if begun >= stop_at:
                return
            ok = call(session, index * 1_000_000 + i)
            i += 1
            took = time.monotonic() - begun
            if begun >= start_at:
                with lock:
                    latencies.append(took)
                    errors += 0 if ok else 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    count = len(latencies)
    return Figure(
        name=name, requests=count, errors=errors, seconds=seconds,
        per_second=round(count / seconds, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 1) if count else 0.0,
        p99_ms=round(latencies[min(count - 1, int(count * 0.99))] * 1000, 1) if count else 0.0,
        concurrency=concurrency,
    )


def report(bench: str, figures: list[Figure], notes: dict[str, str],
           module: str | None = None) -> None:
    """Print the figures with the command that made them; ``bench`` names the JSON file
    (several runs of one module may keep their own)."""
    command = " ".join(["python", "-m", f"bench.{module or bench}", *sys.argv[1:]])
    print(f"\n{bench}: {os.cpu_count()} cores, {platform.python_version()}, "
          f"everything on this one machine (load generator included)")
    print(f"{'figure':45} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'conc':>5}")
    for f in figures:
        print(f"{f.name:45} {f.per_second:9.1f} {f.p50_ms:8.1f} {f.p99_ms:8.1f} "
              f"{f.errors:7d} {f.concurrency:5d}")
    if LAST_PEAKS:
        notes = {**notes, "peak RSS MiB, one process of each": ", ".join(
            f"{label} {mib:.0f}" for label, mib in sorted(LAST_PEAKS.items(),
                                                          key=lambda item: -item[1]))}
    for key, value in notes.items():
        print(f"  {key}: {value}")
    print(f"command: {command}")
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{bench}.json").write_text(json.dumps({
        "bench": bench, "command": command, "cores": os.cpu_count(),
        "figures": [asdict(f) for f in figures], "notes": notes,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=2))


_LABELS = [
    ("gunicorn", "gateway"), ("IdentityService", "identity"),
    ("CustomersService", "customers"), ("OrdersService", "orders"),
    ("NotificationsService", "notifications"), ("postgres", "postgresql"),
    ("beam.smp", "rabbitmq"), ("redis-server", "redis"),
    # `make run`'s process manager: it reads and rewrites every log line of every process.
    ("bin/honcho", "honcho"),
]


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part of the system, read from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        label = "load generator + SMTP sink" if int(entry.name) == me else next(
            (name for needle, name in _LABELS if needle in cmdline and "sh -c" not in cmdline),
            None)
        if label:
            totals[label] = totals.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return totals


def processes() -> dict[int, str]:
    """Each process of the system by pid, with its part's label (as cpu_seconds names it)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        label = next((name for needle, name in _LABELS
                      if needle in cmdline and "sh -c" not in cmdline), None)
        if label:
            found[int(entry.name)] = label
    return found


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakRss:
    """The largest RSS of any one process of each part (a gateway worker, a service
    process), sampled every half second while the block runs: what a container limit must
    hold. ``peaks`` is {label: MiB}."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            for pid, label in processes().items():
                self.peaks[label] = max(self.peaks.get(label, 0.0), round(rss_mib(pid), 1))
            if self._stop.wait(self.interval):
                return

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def cpu_share(before: dict[str, float], after: dict[str, float], seconds: float
              ) -> dict[str, float]:
    """Cores used by each part between two snapshots (2.0 = both cores of this machine)."""
    return {k: round((after.get(k, 0.0) - before.get(k, 0.0)) / seconds, 2)
            for k in sorted(after, key=lambda k: before.get(k, 0.0) - after.get(k, 0.0))}


# wrk's closing lines: every answer's status, and the latency percentiles (ms) of all requests.
WRK_REPORT = """
local threads = {}
function setup(thread)
  thread:set("tag", #threads + 1)
  table.insert(threads, thread)
end
function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("codes")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("status %d %d\\n", status, count))
  end
  io.write(string.format("p50 %.1f p99 %.1f\\n", latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000))
end
"""


@dataclass
class WrkRun:
    codes: dict[int, int]
    seconds: float
    p50_ms: float
    p99_ms: float

    def per_second(self, status: int = 200) -> float:
        return round(self.codes.get(status, 0) / self.seconds, 1)


def wrk(url: str, script: str, connections: int, seconds: float, threads: int = 2) -> WrkRun:
    """Drive ``url`` with wrk (compiled: it does not steal the CPU it measures). ``script``
    is Lua defining ``init`` (which must set ``codes = {}``) and ``request``; the answers'
    statuses and the latency percentiles are counted here."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script + WRK_REPORT)
    try:
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:.0f}s",
                              "--timeout", "30s", "-s", file.name, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(file.name)
    codes = {int(a): int(b) for a, b in re.findall(r"status (\d+) (\d+)", out)}
    found = re.search(r"p50 ([\d.]+) p99 ([\d.]+)", out)
    p50, p99 = (float(x) for x in found.groups()) if found else (0.0, 0.0)
    return WrkRun(codes, round(seconds), p50, p99)
