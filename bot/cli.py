"""The `taleweaver` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from engine.database_admin import DatabaseUnavailable, migrate, safe_url
from engine.errors import StoryError
from engine.model.errors import ModelLoadError
from engine.queue.errors import QueueError
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


def _configure_logging(settings: Settings) -> None:
    logging.getLogger().setLevel(settings.log_level.upper())
    # Library chatter would drown the story in the terminal.
    for noisy in ("httpx", "transformers", "accelerate", "bitsandbytes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the scripted demo story with the real narrator."""
    from bot.terminal import run_demo

    settings = _settings()
    try:
        result = asyncio.run(
            run_demo(settings, out_dir=Path(args.out), narrator_turns=args.narrator_turns)
        )
    except (StoryError, ModelLoadError, QueueError) as exc:
        return _fail(str(exc))
    return 0 if result.narrator_turns >= args.narrator_turns else 1


def cmd_play(args: argparse.Namespace) -> int:
    """Play interactively in the terminal."""
    from bot.terminal import run_play

    try:
        asyncio.run(run_play(_settings(), out_dir=Path(args.out)))
    except (StoryError, ModelLoadError, QueueError) as exc:
        return _fail(str(exc))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a model worker that serves generation jobs from Redis."""
    from engine.worker_main import run_worker

    settings = _settings()
    if not settings.queue_url.startswith(("redis://", "rediss://")):
        return _fail(
            "the worker needs TALEWEAVER_QUEUE_URL=redis://host:6379/0; with memory:// the "
            "bot and `taleweaver play` run their own worker in-process"
        )
    try:
        asyncio.run(run_worker(settings, max_batch=args.max_batch))
    except (ModelLoadError, QueueError) as exc:
        return _fail(str(exc))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure generation throughput through the real worker path."""
    from engine.bench import benchmark_generation

    settings = _settings()
    try:
        report = asyncio.run(
            benchmark_generation(
                settings,
                concurrency=tuple(args.concurrency),
                max_new_tokens=args.max_new_tokens,
            )
        )
    except (ModelLoadError, QueueError, RuntimeError) as exc:
        return _fail(str(exc))
    print(report.format())
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

    p = sub.add_parser("demo", help="play a scripted three-player story with the real narrator")
    p.add_argument("--out", default="stories", help="folder for the saved story (default: stories)")
    p.add_argument("--narrator-turns", type=int, default=6, help="narrator passages to write")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "play", help="play interactively in the terminal, several players at one keyboard"
    )
    p.add_argument("--out", default="stories", help="folder for /save (default: stories)")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("worker", help="serve generation jobs from the Redis queue")
    p.add_argument("--max-batch", type=int, default=8, help="most jobs generated together")
    p.set_defaults(func=cmd_worker)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    p = bench.add_parser("generate", help="single-stream vs batched generation throughput")
    p.add_argument("--concurrency", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command != "migrate":
        _configure_logging(_settings())
    if getattr(args, "revision", "x") is None:
        args.revision = "base" if args.down else "head"
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
