"""The `taleweaver` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from engine.database_admin import DatabaseUnavailable, migrate, safe_url
from engine.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"TALEWEAVER_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise SystemExit(_fail(f"invalid configuration: {problems}")) from None


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the database schema (or downgrade with --down)."""
    url = args.database_url or _settings().database_url
    try:
        revision = asyncio.run(migrate(url, args.revision, down=args.down))
    except DatabaseUnavailable as exc:
        return _fail(str(exc))
    print(f"database {safe_url(url)} is at revision {revision or 'base (empty)'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="taleweaver",
        description="Round-robin collaborative storytelling with a local narrator.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument("--database-url", help="override TALEWEAVER_DATABASE_URL")
    p.add_argument(
        "--revision", default=None, help="target revision (default: head, or base with --down)"
    )
    p.add_argument("--down", action="store_true", help="downgrade instead of upgrade")
    p.set_defaults(func=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "revision", "x") is None:
        args.revision = "base" if args.down else "head"
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
