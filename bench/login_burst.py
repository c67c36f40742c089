"""Identity's memory through a burst of logins: RSS every second, the peak, and what is left
after, with the login rate, driven by wrk (a compiled load generator: a Python one would
steal the CPU it measures).

    python -m bench.login_burst [--seconds 60] [--connections 32] [--bursts 2]

The system runs as `make run` starts it, on PostgreSQL. Identity's RSS is read from
/proc/<pid>/status (VmRSS) of the IdentityService process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import requests

from bench.common import owner_headers, processes, rss_mib, running_system, wrk

PASSWORD = "benchmark passphrase 2026"
ACCOUNTS = 64

# wrk: every request logs in as the next account, from 127.0.0.1 (exempt from the address
# limits, so this measures hashing and sessions, not throttling).
WRK_SCRIPT = """
function init(args)
  n = 0
  codes = {}
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local body = string.format('{"email": "burst-%d@example.com", "password": "PASSWORD"}',
                             n % ACCOUNTS)
  return wrk.format(nil, "/api/v1/auth/login", nil, body)
end
""".replace("PASSWORD", PASSWORD).replace("ACCOUNTS", str(ACCOUNTS))


def burst(url: str, seconds: float, connections: int, pid: int) -> dict[str, object]:
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_mib(pid))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run = wrk(url, WRK_SCRIPT, connections, seconds)
    finally:
        stop.set()
        sampler.join()
    codes, p50, p99 = run.codes, run.p50_ms, run.p99_ms
    return {"logins_per_s": round(codes.get(200, 0) / seconds, 1), "codes": codes,
            "p50_ms": p50, "p99_ms": p99, "rss_peak_mib": round(max(samples), 1),
            "rss_samples_mib": [round(s) for s in samples]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--bursts", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    with running_system() as system:
        requests.put(system.api("/admin/settings"), timeout=10, json={
            "customer_accounts": "optional"}, headers=owner_headers(system))
        time.sleep(1.5)
        for i in range(ACCOUNTS):
            requests.post(system.api("/customers"), timeout=30,
                          json={"email": f"burst-{i}@example.com", "password": PASSWORD})
        [pid] = [pid for pid, label in processes().items() if label == "identity"]
        time.sleep(2)
        result: dict[str, object] = {"rss_start_mib": round(rss_mib(pid), 1), "bursts": []}
        for _ in range(args.bursts):
            figures = burst(system.url, args.seconds, args.connections, pid)
            time.sleep(5)
            figures["rss_after_5s_mib"] = round(rss_mib(pid), 1)
            result["bursts"].append(figures)  # type: ignore[attr-defined]
        limits = {"ARGON2_MAX_CONCURRENT": os.environ.get("ARGON2_MAX_CONCURRENT", "4 (default)"),
                  "ARGON2_MEMORY_KIB": os.environ.get("ARGON2_MEMORY_KIB", "19456 (default)")}
    print(f"\nlogin_burst: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"wrk -c{args.connections} for {args.seconds:.0f} s x {args.bursts}; settings {limits}")
    print(f"identity RSS at start: {result['rss_start_mib']} MiB")
    for n, figures in enumerate(result["bursts"], 1):  # type: ignore[arg-type]
        print(f"burst {n}: {figures['logins_per_s']} logins/s (answers {figures['codes']}), "
              f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms; identity RSS peak "
              f"{figures['rss_peak_mib']} MiB, 5 s after {figures['rss_after_5s_mib']} MiB")
    print("command: " + " ".join(["python", "-m", "bench.login_burst", *sys.argv[1:]]))
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / "login_burst.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
