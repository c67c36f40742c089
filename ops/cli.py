"""``clientela``: the operator's command line (migrate, topology, seed, infrastructure checks)."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"


def amqp_uri() -> str:
    return os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI


def cmd_check(args: argparse.Namespace) -> int:
    from ops.infra import check_postgres, check_rabbitmq

    problems = [check_rabbitmq(amqp_uri())]
    if args.postgres:
        problems.append(check_postgres(args.postgres))
    problems = [p for p in problems if p]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from messaging.migrations import upgrade
    from ops.registry import SERVICES

    for info in SERVICES:
        if args.service and info.name not in args.service:
            continue
        upgrade(info.directory, info.database_url())
        print(f"migrated {info.name}")
    return 0


def cmd_topology(args: argparse.Namespace) -> int:
    from messaging.topology import declare
    from ops.registry import SERVICES

    names = declare(amqp_uri(), [info.service_class() for info in SERVICES])
    print(f"declared {len(names)} exchanges and queues")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from services.orders.seed import seed_demo_catalogue

    added = seed_demo_catalogue()
    print(f"demo catalogue: {added} product(s) added")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clientela",
        description="Operate a Clientela installation. Configuration comes from the "
        "environment (AMQP_URI, *_DATABASE_URL, ...; see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="check that RabbitMQ (and optionally PostgreSQL) answer")
    check.add_argument("--postgres", metavar="URL", help="also check this PostgreSQL URL")
    check.set_defaults(func=cmd_check)

    migrate = sub.add_parser("migrate", help="upgrade every service's database to the latest")
    migrate.add_argument("service", nargs="*", help="only these services (default: all)")
    migrate.set_defaults(func=cmd_migrate)

    topology = sub.add_parser(
        "topology", help="declare every exchange and queue (run before services publish)"
    )
    topology.set_defaults(func=cmd_topology)

    seed = sub.add_parser("seed-demo", help="add a few demo products (idempotent)")
    seed.set_defaults(func=cmd_seed_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
