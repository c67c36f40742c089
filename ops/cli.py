"""``clientela``: the operator's command line (migrate, topology, seed, infrastructure checks)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

# nameko runs on eventlet, which warns on import that it is in maintenance mode; we know.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"


def amqp_uri() -> str:
    return os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI


def cmd_check(args: argparse.Namespace) -> int:
    from ops.infra import check_postgres, check_rabbitmq, check_redis

    problems = [check_rabbitmq(amqp_uri())]
    if args.postgres:
        problems.append(check_postgres(args.postgres))
    if args.redis:
        problems.append(check_redis(args.redis))
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


def _consuming_services(only: str | None) -> list[str]:
    from messaging.topology import consumers_of
    from ops.registry import SERVICES

    names = [info.name for info in SERVICES if any(consumers_of(info.service_class()))]
    if only and only not in names:
        raise SystemExit(f"{only!r} consumes no events; services with a DLQ: {', '.join(names)}")
    return [only] if only else names


def cmd_dlq(args: argparse.Namespace) -> int:
    from messaging import deadletters

    uri = amqp_uri()
    if args.action == "list":
        for service in _consuming_services(args.service):
            print(f"{service}.dead-letter\t{deadletters.depth(uri, service)} message(s)")
        return 0
    if not args.service:
        raise SystemExit(f"dlq {args.action} needs a SERVICE")
    if args.action == "show":
        letters = deadletters.peek(uri, args.service)
    elif args.action == "replay":
        if not (args.event_id or args.all):
            raise SystemExit("dlq replay needs --event-id ID or --all")
        letters = deadletters.replay(uri, args.service, args.event_id)
    else:
        if not args.event_id:
            raise SystemExit("dlq discard needs --event-id ID")
        letters = deadletters.discard(uri, args.service, args.event_id)
    for letter in letters:
        print(f"{letter.event_id}\t{letter.event_type}\tattempts={letter.attempts}\t"
              f"failed_at={letter.failed_at}\t{letter.error}")
    if args.action != "show":
        print(f"{args.action}: {len(letters)} message(s)")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from messaging.database import create_engine_for
    from ops.registry import SERVICES

    print("service\tunpublished\toldest\tmax_attempts\tlast_error")
    for info in SERVICES:
        engine = create_engine_for(info.database_url(), pool_size=1)
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT count(*), min(created_at), max(attempts), max(last_error) "
                "FROM outbox WHERE published_at IS NULL")).one()
        engine.dispose()
        print(f"{info.name}\t{row[0]}\t{row[1] or '-'}\t{row[2] or 0}\t{row[3] or '-'}")
    return 0


def cmd_dkim_keygen(args: argparse.Namespace) -> int:
    from services.notifications.dependencies import new_dkim_key

    private, record = new_dkim_key(args.selector, args.domain)
    out = Path(args.out)
    if out.exists():
        print(f"{out} exists: not overwritten (give another --out)", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600)
    out.write_bytes(private)
    print(f"private key written to {out}: set DKIM_PRIVATE_KEY_FILE={out}, "
          f"DKIM_SELECTOR={args.selector}, DKIM_DOMAIN={args.domain}")
    print("publish this DNS TXT record:")
    print(record)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from messaging.keys import ensure_local_keys, keys_dir, rotate_signing_key

    if args.rotate_signing_key:
        old, new = rotate_signing_key()
        print(f"signing key rotated: {old} -> {new} (in {keys_dir()})")
        print("Restart identity (one replica at a time is fine) to sign with the new key. "
              "Tokens signed with the old key stay valid until they expire: identity keeps "
              "publishing it. Refresh tokens are not keys: nobody is logged out.")
        return 0
    created = ensure_local_keys()
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"keys already present in {keys_dir()}")
    return 0


def cmd_ensure_owner(args: argparse.Namespace) -> int:
    from services.identity.bootstrap import ensure_owner

    try:
        owner = ensure_owner(os.environ.get("OWNER_EMAIL"), os.environ.get("OWNER_PASSWORD"))
    except ValueError as exc:  # one line saying which rule failed, not a traceback
        print(f"the store owner was not created: OWNER_PASSWORD is refused: {exc}",
              file=sys.stderr)
        return 1
    if owner is None:
        print("an owner already exists")
    elif owner.password:
        # Shown once, here; only its hash is kept.
        print(f"created the store owner: {owner.email} / {owner.password}")
        print("  (log in at POST /api/v1/admin/auth/login; this password is not shown again)")
    else:
        print(f"created the store owner {owner.email} (password from OWNER_PASSWORD)")
    return 0


def cmd_create_staff(args: argparse.Namespace) -> int:
    import getpass

    from services.identity.bootstrap import create_staff

    # From STAFF_PASSWORD, else asked at a terminal, else one line of standard input (a
    # script's pipe): getpass would warn that it cannot hide what is not typed.
    if args.generate_password:
        password = None
    elif os.environ.get("STAFF_PASSWORD"):
        password = os.environ["STAFF_PASSWORD"]
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        staff = create_staff(args.email, args.role, password)
    except ValueError as exc:
        print(f"not created: {exc}", file=sys.stderr)
        return 1
    print(f"created {staff.role} {staff.email}"
          + (f" with password {staff.password}" if staff.password else ""))
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
    check.add_argument("--redis", metavar="URL", help="also check this Redis URL")
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

    dlq = sub.add_parser(
        "dlq", help="dead-lettered events: list queues, show, replay or discard messages",
        description="Events whose handler kept failing wait in SERVICE.dead-letter. "
        "Replay sends them back to their handler queue with a fresh attempt count.",
    )
    dlq.add_argument("action", choices=["list", "show", "replay", "discard"])
    dlq.add_argument("service", nargs="?", help="the consuming service (customers, ...)")
    dlq.add_argument("--event-id", help="only this event")
    dlq.add_argument("--all", action="store_true", help="replay every message")
    dlq.set_defaults(func=cmd_dlq)

    keys = sub.add_parser("keys", help="create the local signing and sealing keys in var/keys "
                          "(production passes JWT_PRIVATE_KEY and TOKEN_SEALING_KEY instead)")
    keys.add_argument("--rotate-signing-key", action="store_true",
                      help="make a new token signing key; the current one stays published "
                           "until its tokens expire (nobody is logged out)")
    keys.set_defaults(func=cmd_keys)

    dkim = sub.add_parser("dkim-keygen", help="make a DKIM signing key for outgoing email "
                          "and print the DNS TXT record to publish")
    dkim.add_argument("--domain", required=True, help="the domain of MAIL_FROM's address")
    dkim.add_argument("--selector", default="clientela", help="the DKIM selector (default "
                      "clientela)")
    dkim.add_argument("--out", default=str(Path("var") / "keys" / "dkim.pem"),
                      help="where the private key goes (default var/keys/dkim.pem)")
    dkim.set_defaults(func=cmd_dkim_keygen)

    owner = sub.add_parser("ensure-owner", help="create the first store owner unless one exists "
                           "(OWNER_EMAIL, OWNER_PASSWORD; else a generated password, shown once)")
    owner.set_defaults(func=cmd_ensure_owner)

    staff = sub.add_parser("create-staff", help="add a staff user: the password from "
                           "STAFF_PASSWORD, else asked (or read from a pipe)")
    staff.add_argument("email")
    staff.add_argument("--role", choices=["owner", "staff"], default="staff")
    staff.add_argument("--generate-password", action="store_true",
                       help="generate a password and print it once instead of asking")
    staff.set_defaults(func=cmd_create_staff)

    outbox = sub.add_parser("outbox", help="each service's backlog of unpublished events")
    outbox.set_defaults(func=cmd_outbox)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
