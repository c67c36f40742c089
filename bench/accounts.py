"""Logins and refresh-token rotations per second through the gateway, with the ceilings.

    python -m bench.accounts [--seconds 15] [--concurrency 8]

Figures, all in one run on one system (PostgreSQL, RabbitMQ, 2 gateway workers):
- ceiling: a no-op gateway route (/healthz), and a route doing one RPC (/api/v1/products);
- logins: POST /api/v1/auth/login with the default argon2id cost (stated below);
- refreshes: POST /api/v1/auth/refresh, each rotating the token it got last time;
- my orders: GET /api/v1/me/orders (the newest 20) of customers with 30 orders each.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import requests

from bench.common import load, owner_headers, report, running_system

PASSWORD = "benchmark passphrase 2026"
ADDRESS = {"first_name": "Bench", "last_name": "Mark", "line1": "Calle 1", "city": "Madrid",
           "country": "ES"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--accounts", type=int, default=50)
    args = parser.parse_args()

    with running_system() as system:
        requests.put(system.api("/admin/settings"), timeout=10, json={
            "customer_accounts": "optional"}, headers=owner_headers(system))
        emails = [f"bench-{i}@example.com" for i in range(args.accounts)]
        for email in emails:
            requests.post(system.api("/customers"), timeout=30,
                          json={"email": email, "password": PASSWORD})
        time.sleep(2)  # let every gateway worker's settings cache expire

        def healthz(session: requests.Session, i: int) -> bool:
            return session.get(f"{system.url}/healthz", timeout=10).status_code == 200

        def products(session: requests.Session, i: int) -> bool:
            return session.get(system.api("/products"), timeout=10).status_code == 200

        def login(session: requests.Session, i: int) -> bool:
            # Distinct client addresses: this measures hashing and sessions, not throttling.
            response = session.post(system.api("/auth/login"), timeout=30, json={
                "email": emails[i % len(emails)], "password": PASSWORD},
                headers={"X-Forwarded-For": f"198.51.100.{i % 250}"})
            return response.status_code == 200

        refresh_tokens: dict[int, str] = {}
        tokens_lock = threading.Lock()

        def refresh(session: requests.Session, i: int) -> bool:
            slot = i // 1_000_000
            with tokens_lock:
                token = refresh_tokens.get(slot)
            if token is None:
                token = session.post(system.api("/auth/login"), timeout=30, json={
                    "email": emails[slot % len(emails)], "password": PASSWORD},
                    headers={"X-Forwarded-For": f"198.51.100.{slot}"}).json()["refresh_token"]
            response = session.post(system.api("/auth/refresh"), timeout=30,
                                    json={"refresh_token": token})
            if response.status_code != 200:
                return False
            with tokens_lock:
                refresh_tokens[slot] = response.json()["refresh_token"]
            return True

        # Customers with an order history for /me/orders: 30 orders each, placed logged in.
        sku = requests.get(system.api("/products"), timeout=10).json()["items"][0]["sku"]
        shoppers = []
        for n, email in enumerate(emails[:args.concurrency]):
            token = requests.post(system.api("/auth/login"), timeout=30, json={
                "email": email, "password": PASSWORD},
                headers={"X-Forwarded-For": f"203.0.113.{n}"}).json()["access_token"]
            shopper = {"Authorization": f"Bearer {token}"}
            for _ in range(30):
                placed = requests.post(system.api("/checkout"), timeout=30, headers=shopper,
                                       json={"lines": [{"sku": sku, "quantity": 1}],
                                             "email": email, "shipping_address": ADDRESS})
                assert placed.status_code == 201, placed.text
            shoppers.append(shopper)

        def my_orders(session: requests.Session, i: int) -> bool:
            response = session.get(system.api("/me/orders"), timeout=10,
                                   headers=shoppers[i % len(shoppers)])
            return response.status_code == 200 and len(response.json()["items"]) == 20

        figures = [
            load("ceiling: no-op gateway route (/healthz)", healthz, args.concurrency,
                 args.seconds),
            load("ceiling: one RPC per request (/products)", products, args.concurrency,
                 args.seconds),
            load("logins (POST /auth/login)", login, args.concurrency, args.seconds),
            load("refresh rotations (POST /auth/refresh)", refresh, args.concurrency,
                 args.seconds),
            load("my orders (GET /me/orders, 30 orders each)", my_orders, args.concurrency,
                 args.seconds),
        ]
    report("accounts", figures, {
        "argon2id cost": (f"m={os.environ.get('ARGON2_MEMORY_KIB', '19456')} KiB, "
                          f"t={os.environ.get('ARGON2_TIME_COST', '2')}, "
                          f"p={os.environ.get('ARGON2_PARALLELISM', '1')}"),
        "gateway": "gunicorn gthread, 2 workers x 8 threads",
    })


if __name__ == "__main__":
    main()
