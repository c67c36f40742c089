"""Ten minutes of mixed traffic, and each part's memory through it: does anything grow?

    python -m bench.soak [--minutes 10] [--connections 8]

wrk (compiled: it does not steal the CPU it measures) sends, round robin, a guest checkout
(each one emailed), a login, the admin's customer list and the admin's order list. RSS of
one process of each part is printed at the start, every minute and at the end; growth is
measured from the end of the first minute (warm-up: caches, pools and lazy imports fill
then) to the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.common import owner_headers, processes, rss_mib, running_system

PASSWORD = "benchmark passphrase 2026"
ACCOUNTS = 32

WRK_SCRIPT = """
function init(args)
  n = 0
end
local login = '{"email": "soak-%d@example.com", "password": "PASSWORD"}'
local checkout = '{"email": "soak-guest-%d-%d@example.com", "lines": ' ..
  '[{"sku": "MUG-LOGO", "quantity": 1}], "shipping_address": {"first_name": "Soak", ' ..
  '"last_name": "Test", "line1": "Calle 1", "city": "Madrid", "country": "ES"}}'
local json = {["Content-Type"] = "application/json"}
local admin = {["Authorization"] = "Bearer TOKEN"}
request = function()
  n = n + 1
  local kind = n % 4
  if kind == 0 then
    return wrk.format("POST", "/api/v1/checkout", json,
                      string.format(checkout, math.random(1, 1000000000), n))
  elseif kind == 1 then
    return wrk.format("POST", "/api/v1/auth/login", json, string.format(login, n % ACCOUNTS))
  elseif kind == 2 then
    return wrk.format("GET", "/api/v1/admin/customers?limit=25", admin)
  end
  return wrk.format("GET", "/api/v1/admin/orders?limit=25", admin)
end
"""


def snapshot() -> dict[str, float]:
    """RSS (MiB) of the largest process of each part."""
    rss: dict[str, float] = {}
    for pid, label in processes().items():
        rss[label] = max(rss.get(label, 0.0), round(rss_mib(pid), 1))
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    with running_system() as system:
        owner = owner_headers(system)
        requests.put(system.api("/admin/settings"), timeout=10, headers=owner,
                     json={"customer_accounts": "optional"})
        # The soak's guests would soon hold every unit: unlimited stock for the mug.
        requests.patch(system.api("/admin/products/MUG-LOGO"), timeout=10, headers=owner,
                       json={"stock": None})
        time.sleep(1.5)
        for i in range(ACCOUNTS):
            requests.post(system.api("/customers"), timeout=30,
                          json={"email": f"soak-{i}@example.com", "password": PASSWORD})
        script = WRK_SCRIPT.replace("PASSWORD", PASSWORD).replace(
            "ACCOUNTS", str(ACCOUNTS)).replace("TOKEN", owner["Authorization"].split()[1])
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
            file.write(script)
        minutes: list[dict[str, float]] = [snapshot()]
        stop = threading.Event()

        def every_minute() -> None:
            while not stop.wait(60):
                minutes.append(snapshot())
                print(f"minute {len(minutes) - 1}: " + ", ".join(
                    f"{k} {v:.0f}" for k, v in sorted(minutes[-1].items())), flush=True)

        sampler = threading.Thread(target=every_minute, daemon=True)
        sampler.start()
        try:
            out = subprocess.run(["wrk", "-t2", f"-c{args.connections}",
                                  f"-d{args.minutes * 60}s", "--timeout", "30s", "-s",
                                  file.name, system.url], capture_output=True, text=True,
                                 check=True).stdout
        finally:
            stop.set()
            os.unlink(file.name)
        minutes.append(snapshot())
        [(orders,)] = system.sql("orders", "SELECT count(*) FROM orders")
        [(mails,)] = system.sql("notifications", "SELECT count(*) FROM deliveries")
    warm, end = minutes[1] if len(minutes) > 2 else minutes[0], minutes[-1]
    growth = {k: round(100 * (end[k] - warm[k]) / warm[k], 1) for k in end if warm.get(k)}
    print(f"\nsoak: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"wrk -c{args.connections} for {args.minutes} min, mixed traffic")
    print(out.strip())
    print(f"orders placed: {orders}; emails logged: {mails}")
    for label in sorted(end):
        series = " -> ".join(f"{m.get(label, 0):.0f}" for m in minutes)
        print(f"{label:14} RSS MiB {series}   growth after warm-up {growth.get(label, 0)}%")
    print("command: " + " ".join(["python", "-m", "bench.soak", *sys.argv[1:]]))
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / "soak.json").write_text(json.dumps(
        {"minutes": minutes, "growth_percent": growth, "orders": orders, "emails": mails},
        indent=2))


if __name__ == "__main__":
    main()
