"""The `taleweaver` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

from pydantic import ValidationError

from engine.errors import OperatorError, StoryError
from engine.export import ExportFormat, ExportOptions, importer
from engine.ops.database_admin import DatabaseUnavailable, migrate, safe_url
from engine.ops.status import DEFAULT_NEEDS, NEEDS
from engine.queue.errors import QueueError
from engine.runtime import StoryShelf, open_shelf
from engine.settings import QUANTIZATION_MODES, Settings, get_settings
from engine.telemetry.logs import configure_logging, url_password

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


# The story is demo's and play's output, and the one-shot commands print their own result
# (or one error line): log lines would cut into it, so these show only warnings unless
# -v/-vv asks for more. The bot, the worker and the benchmark follow TALEWEAVER_LOG_LEVEL.
QUIET_COMMANDS = frozenset({"demo", "play", "migrate", "list", "export", "import", "status"})


def _configure_logging(args: argparse.Namespace) -> None:
    """Log to stderr at the level the command and -v/-vv ask for, secrets hidden."""
    try:
        settings: Settings | None = get_settings()
    except ValidationError:
        settings = None  # the command itself reports the invalid configuration
    verbose = getattr(args, "verbose", 0)
    if verbose >= 2:
        level = "DEBUG"
    elif verbose == 1:
        level = "INFO"
    elif args.command in QUIET_COMMANDS:
        level = "WARNING"
    else:
        level = settings.log_level if settings is not None else "INFO"
    log_format = getattr(args, "log_format", None) or (
        settings.log_format if settings is not None else "text"
    )
    configure_logging(level, log_format=log_format, secrets=_secrets(settings, args))


def _secrets(settings: Settings | None, args: argparse.Namespace) -> list[str]:
    """Return what must never appear in a log line: the token and every password."""
    found: list[str] = []
    urls = [getattr(args, "database_url", None)]
    if settings is not None:
        if settings.discord_token is not None:
            found.append(settings.discord_token.get_secret_value())
        urls += [settings.database_url, settings.queue_url]
    found += [p for url in urls if url and (p := url_password(url))]
    return found


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the scripted demo story with the real narrator."""
    from bot.terminal import run_demo

    settings = _settings()
    try:
        result = asyncio.run(
            run_demo(settings, out_dir=Path(args.out), narrator_turns=args.narrator_turns)
        )
    except (StoryError, OperatorError, QueueError) as exc:
        return _fail(str(exc))
    return 0 if result.narrator_turns >= args.narrator_turns else 1


def cmd_play(args: argparse.Namespace) -> int:
    """Play interactively in the terminal."""
    from bot.terminal import run_play

    try:
        asyncio.run(run_play(_settings(), out_dir=Path(args.out)))
    except (StoryError, OperatorError, QueueError) as exc:
        return _fail(str(exc))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a model worker that serves generation jobs from Redis."""
    from engine.worker.main import run_worker

    settings = _settings()
    if not settings.queue_url.startswith(("redis://", "rediss://")):
        return _fail(
            "the worker needs TALEWEAVER_QUEUE_URL=redis://host:6379/0; with memory:// the "
            "bot and `taleweaver play` run their own worker in-process"
        )
    if args.metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": args.metrics_port})
    try:
        asyncio.run(run_worker(settings, max_batch=args.max_batch))
    except (OperatorError, QueueError) as exc:
        return _fail(str(exc))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Report database, queue, workers and stories; exit 1 when something needed is down."""
    from engine.ops.status import check_status

    settings = _settings()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # it announces each revision read
    needs = tuple(dict.fromkeys(n for arg in args.need for n in arg.split(",") if n))
    report = asyncio.run(
        check_status(
            args.database_url or settings.database_url,
            settings.queue_url,
            needs=needs or DEFAULT_NEEDS,
            timeout_s=args.timeout,
        )
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
    return 0 if report.healthy else 1


def _needs(value: str) -> str:
    unknown = [n for n in value.split(",") if n and n not in NEEDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {', '.join(unknown)}; choose from {', '.join(NEEDS)}"
        )
    return value


def cmd_bot(args: argparse.Namespace) -> int:
    """Connect to Discord and play stories there."""
    from bot.discord.app import BotOptions, BotStartError, run_bot

    settings = _settings()
    if settings.discord_token is None:
        return _fail("set TALEWEAVER_DISCORD_TOKEN to your bot's token (Developer Portal > Bot)")
    options = BotOptions(
        message_content=settings.discord_message_content,
        members_intent=settings.discord_members_intent,
        edit_interval_seconds=settings.discord_edit_interval_seconds,
        command_guild_id=settings.discord_command_guild_id,
        shards=None if settings.discord_shards == "auto" else settings.discord_shards,
    )
    try:
        asyncio.run(
            run_bot(settings, token=settings.discord_token.get_secret_value(), options=options)
        )
    except KeyboardInterrupt:
        return 0
    except (BotStartError, StoryError, OperatorError, QueueError) as exc:
        return _fail(str(exc))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure generation throughput through the real worker path."""
    from engine.ops.bench import benchmark_generation
    from engine.ops.bench_peer import PeerUnavailable, check_peer
    from engine.ops.quality_set import StorySetError

    settings = _settings()
    if args.peer is not None:
        try:
            check_peer(args.peer, settings)  # before the long run, not after it
        except PeerUnavailable as exc:
            return _fail(str(exc))
    try:
        report = asyncio.run(
            benchmark_generation(
                settings,
                concurrency=tuple(args.concurrency),
                max_new_tokens=args.max_new_tokens,
                late_jobs=args.late_jobs,
                peer=args.peer,
                progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
        )
    except (OperatorError, QueueError, StorySetError, RuntimeError, ValueError) as exc:
        return _fail(str(exc))
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format())
    return 0


def cmd_bench_e2e(args: argparse.Namespace) -> int:
    """Time turns to the narrator's text through Redis and a `taleweaver worker` process."""
    from engine.ops.bench_e2e import E2EBenchError, benchmark_e2e
    from engine.ops.quality_set import StorySetError

    settings = _settings()
    try:
        report = asyncio.run(
            benchmark_e2e(
                settings,
                stories=tuple(args.stories),
                turns=args.turns,
                max_batch=args.max_batch,
                progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
        )
    except (E2EBenchError, StorySetError, StoryError, OperatorError, QueueError) as exc:
        return _fail(str(exc))
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format())
    return 0


def cmd_bench_quality(args: argparse.Namespace) -> int:
    """Measure perplexity per quantization mode and the narrator's passages."""
    from engine.ops.bench_quality import benchmark_quality
    from engine.ops.quality_set import StorySetError

    settings = _settings()
    if args.candidates is not None and not 1 <= args.candidates <= 16:
        return _fail("--candidates must be between 1 and 16")
    if args.stories is not None and args.stories < 1:
        return _fail("--stories must be at least 1")
    unknown = [m for m in args.modes if m not in QUANTIZATION_MODES]
    if unknown:
        return _fail(
            f"unknown quantization mode {unknown[0]!r}; use {', '.join(QUANTIZATION_MODES)}"
        )
    try:
        report = benchmark_quality(
            settings,
            modes=args.modes,
            seeds=args.seeds,
            candidates=args.candidates,
            passages=not args.no_passages,
            stories_limit=args.stories,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (OperatorError, StorySetError, RuntimeError) as exc:
        return _fail(str(exc))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0


def cmd_bench_safety(args: argparse.Namespace) -> int:
    """Measure the content filters on clean published prose and on hostile text."""
    from engine.ops.bench_safety import benchmark_safety, format_report, report_json

    results = benchmark_safety()
    print(report_json(results) if args.json else format_report(results))
    return 0


def cmd_bench_load(args: argparse.Namespace) -> int:
    """Play many stories at once on the configured database; report turns/s and latency."""
    from engine.ops.bench_load import LoadBenchError, benchmark_load

    settings = _settings()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    try:
        report = asyncio.run(
            benchmark_load(
                settings,
                stories=args.stories,
                turns=args.turns,
                narrator=not args.no_narrator,
                plain=not args.narrator_only,
                pause_s=args.pause,
            )
        )
    except (LoadBenchError, StoryError, OperatorError, QueueError) as exc:
        return _fail(str(exc))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0


# Stories in the database: list, export, import ------------------------------------------------
def _shelf(url: str) -> contextlib.AbstractAsyncContextManager[StoryShelf]:
    """Open the database's stories, without Alembic's progress lines."""
    # They would bury the listing or the one line these commands print.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return open_shelf(url)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join(line(r) for r in [header, *rows])


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


async def _list_stories(url: str, guild_id: int | None) -> str:
    async with _shelf(url) as shelf:
        stories = await shelf.story.queries.list_sessions(guild_id)
    if not stories:
        return "No stories." if guild_id is None else f"No stories on server {guild_id}."
    rows = [
        [
            str(s.id),
            _clip(s.title, 40),
            str(s.status),
            str(s.turn_count),
            _clip(", ".join(p.display_name for p in s.participants), 40),
            s.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        ]
        for s in stories
    ]
    header = ["id", "title", "status", "turns", "players", "created (UTC)"]
    return _table(header, rows, numeric={0, 3})


def cmd_list(args: argparse.Namespace) -> int:
    """Print the stories in the database as a table."""
    url = args.database_url or _settings().database_url
    try:
        print(asyncio.run(_list_stories(url, args.guild)))
    except (StoryError, OperatorError) as exc:
        return _fail(str(exc))
    return 0


async def _export_story(
    url: str, session_id: int, fmt: ExportFormat, options: ExportOptions
) -> tuple[str, bytes]:
    async with _shelf(url) as shelf:
        file = await shelf.exports.export(session_id, fmt, options)
    return file.filename, file.data


async def _export_all(
    url: str, guild_id: int | None, fmt: ExportFormat, options: ExportOptions, folder: Path
) -> list[tuple[int, Path, int]]:
    written = []
    async with _shelf(url) as shelf:
        for story in await shelf.story.queries.list_sessions(guild_id):
            file = await shelf.exports.export(story.id, fmt, options)
            # The id first: two stories may share a title.
            target = folder / f"{story.id:05d}-{file.filename}"
            await asyncio.to_thread(target.write_bytes, file.data)
            written.append((story.id, target, len(file.data)))
    return written


def cmd_export_all(args: argparse.Namespace) -> int:
    """Write every story (of one server with --guild) to a folder, JSON by default."""
    url = args.database_url or _settings().database_url
    fmt = ExportFormat(args.format or ExportFormat.JSON.value)
    if not args.output or args.output == "-":
        return _fail("--all writes one file per story: name a folder with --output DIR")
    folder = Path(args.output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"cannot create {folder}: {exc.strerror or exc}")
    options = ExportOptions(
        include_table_talk=args.table_talk, include_alternatives=args.alternatives
    )
    try:
        written = asyncio.run(_export_all(url, args.guild, fmt, options, folder))
    except (StoryError, OperatorError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write to {folder}: {exc.strerror or exc}")
    where = "" if args.guild is None else f" of server {args.guild}"
    total = sum(size for _, _, size in written)
    print(f"wrote {len(written)} stories{where} as {fmt} to {folder} ({total:,} bytes)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a story to a file (or to stdout with --output -)."""
    if args.all:
        return cmd_export_all(args)
    if args.session is None:
        return _fail("name the story to export (see `taleweaver list`), or use --all")
    if args.guild is not None:
        return _fail("--guild goes with --all")
    url = args.database_url or _settings().database_url
    fmt = ExportFormat(args.format or ExportFormat.MARKDOWN.value)
    if args.output == "-" and not fmt.is_text:
        return _fail(f"{fmt} is not a text format; write it to a file with --output PATH")
    options = ExportOptions(
        include_table_talk=args.table_talk, include_alternatives=args.alternatives
    )
    try:
        filename, data = asyncio.run(_export_story(url, args.session, fmt, options))
    except (StoryError, OperatorError) as exc:
        return _fail(str(exc))
    if args.output == "-":
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return 0
    target = Path(args.output) if args.output else Path(filename)
    if target.is_dir():
        target = target / filename
    try:
        target.write_bytes(data)
    except OSError as exc:
        return _fail(f"cannot write {target}: {exc.strerror or exc}")
    print(f"wrote story {args.session} as {fmt} to {target} ({len(data):,} bytes)")
    return 0


async def _import_story(url: str, data: bytes, guild_id: int | None, channel_id: int | None) -> str:
    async with _shelf(url) as shelf:
        view = await shelf.import_story(data, guild_id=guild_id, channel_id=channel_id)
    return (
        f"imported {view.title!r} as story {view.id} ({view.turn_count} turns, {view.status}) "
        f"on server {view.guild_id}, channel {view.channel_id}"
    )


def cmd_import(args: argparse.Namespace) -> int:
    """Create a new story from a JSON file written by `taleweaver export --format json`."""
    url = args.database_url or _settings().database_url
    # One byte past the limit is enough for the importer to refuse an oversized file,
    # without holding a huge one in memory first.
    most = importer.MAX_IMPORT_BYTES + 1
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read(most)
        else:
            with Path(args.file).open("rb") as file:
                data = file.read(most)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}")
    try:
        print(asyncio.run(_import_story(url, data, args.guild, args.channel)))
    except (StoryError, OperatorError) as exc:
        return _fail(str(exc))
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

    p = sub.add_parser("bot", help="connect to Discord (TALEWEAVER_DISCORD_TOKEN) and play there")
    p.set_defaults(func=cmd_bot)

    p = sub.add_parser("worker", help="serve generation jobs from the Redis queue")
    p.add_argument("--max-batch", type=int, default=8, help="most jobs generated together")
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve this worker's metrics here (default: TALEWEAVER_METRICS_PORT)",
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "status",
        help="database, queue, workers and stories at a glance; exit status 1 when "
        "something needed is down (a container health check)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--need",
        action="append",
        default=[],
        type=_needs,
        metavar="WHAT[,WHAT]",
        help=f"what must be up: {', '.join(NEEDS)} (default: {','.join(DEFAULT_NEEDS)})",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each service")
    p.add_argument("--database-url", help="override TALEWEAVER_DATABASE_URL")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("list", help="list the stories in the database")
    p.add_argument("--guild", type=int, metavar="ID", help="only the stories of this server")
    p.add_argument("--database-url", help="override TALEWEAVER_DATABASE_URL")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("export", help="write a story as Markdown, text, HTML, EPUB or JSON")
    p.add_argument(
        "session", type=int, nargs="?", metavar="SESSION", help="the story's id (see `list`)"
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="every story (with --guild, of one server) to the folder --output DIR, one file "
        "each (default format: json, for safekeeping and `import`)",
    )
    p.add_argument("--guild", type=int, metavar="ID", help="with --all: only this server's")
    p.add_argument(
        "--format",
        choices=[f.value for f in ExportFormat],
        default=None,
        help="file format (default: markdown, json with --all); json can be read back "
        "with `import`",
    )
    p.add_argument("--table-talk", action="store_true", help="include out-of-character remarks")
    p.add_argument(
        "--alternatives", action="store_true", help="include earlier versions of narrator passages"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="file or folder to write (default: a file named after the story, here); "
        "'-' writes text formats to stdout",
    )
    p.add_argument("--database-url", help="override TALEWEAVER_DATABASE_URL")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="add a story from a JSON export as a new story")
    p.add_argument(
        "file", metavar="FILE", help="a JSON file from `export --format json` ('-': stdin)"
    )
    p.add_argument(
        "--guild", type=int, metavar="ID", help="put it on this server (default: its own)"
    )
    p.add_argument(
        "--channel", type=int, metavar="ID", help="put it in this channel (default: its own)"
    )
    p.add_argument("--database-url", help="override TALEWEAVER_DATABASE_URL")
    p.set_defaults(func=cmd_import)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    p = bench.add_parser(
        "generate",
        help="single-stream vs batched generation throughput on realistic prompts",
    )
    p.add_argument("--concurrency", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument(
        "--late-jobs",
        type=int,
        default=8,
        metavar="N",
        help="jobs timed to first text while a batch of 8 runs (default 8)",
    )
    p.add_argument(
        "--peer",
        choices=["llama-cpp"],
        help="also run llama.cpp on the same GGUF and prompts (pip install -e '.[bench]')",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)
    p = bench.add_parser(
        "e2e",
        help="turn to narrator text and passage through Redis and a `taleweaver worker`",
    )
    p.add_argument(
        "--stories",
        type=int,
        nargs="+",
        default=[1, 10, 50],
        metavar="N",
        help="stories playing at once, one round each (default 1 10 50)",
    )
    p.add_argument(
        "--turns", type=int, default=2, help="turns each story writes in a round (default 2)"
    )
    p.add_argument("--max-batch", type=int, default=8, help="the worker's --max-batch (default 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench_e2e)
    p = bench.add_parser(
        "safety", help="clean prose refused and hostile text caught by the filters, per rating"
    )
    p.add_argument("--json", action="store_true", help="print the figures and texts as JSON")
    p.set_defaults(func=cmd_bench_safety)
    p = bench.add_parser(
        "load",
        help="many stories at once on the configured database: turns/s, turn latency, CPU",
    )
    p.add_argument("--stories", type=int, default=50, help="stories played at once")
    p.add_argument("--turns", type=int, default=20, help="turns per story (1-100)")
    p.add_argument(
        "--pause",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds a story waits between its turns (default 0: as fast as it may)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--no-narrator", action="store_true", help="skip the narrator round")
    mode.add_argument("--narrator-only", action="store_true", help="only the narrator round")
    p.add_argument("--database-url", help="override TALEWEAVER_DATABASE_URL")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench_load)
    p = bench.add_parser(
        "quality",
        help="perplexity, memory and speed per quantization mode; narrator passage quality",
    )
    p.add_argument(
        "--modes",
        nargs="*",
        default=list(QUANTIZATION_MODES),
        metavar="MODE",
        help=f"quantization modes to measure (default: all of {', '.join(QUANTIZATION_MODES)}; "
        "none to skip)",
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[11, 22, 33], help="sampling seeds for passages"
    )
    p.add_argument(
        "--candidates",
        type=int,
        help="passages sampled per turn (default: TALEWEAVER_NARRATOR_CANDIDATES)",
    )
    p.add_argument("--stories", type=int, help="use only the first N stories of the set")
    p.add_argument("--no-passages", action="store_true", help="measure the modes only")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench_quality)
    _add_logging_options(parser, sub)
    return parser


def _add_logging_options(
    parser: argparse.ArgumentParser, sub: argparse._SubParsersAction[argparse.ArgumentParser]
) -> None:
    """Accept -v/-vv and --log-format before the command and after it."""
    for target, default in [(parser, 0), *((p, argparse.SUPPRESS) for p in _leaves(sub))]:
        # After the command, SUPPRESS keeps a flag given before it from being reset.
        target.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=default,
            help="more log lines on stderr: -v info, -vv debug (by default bot, worker "
            "and bench follow TALEWEAVER_LOG_LEVEL; the other commands show warnings only)",
        )
        target.add_argument(
            "--log-format",
            choices=["text", "json"],
            default=None if default == 0 else argparse.SUPPRESS,
            help="log lines as text or one JSON object each (default: TALEWEAVER_LOG_FORMAT)",
        )


def _leaves(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    """Return every command's parser, nested ones (bench generate) included."""
    found: list[argparse.ArgumentParser] = []
    for command in dict.fromkeys(sub.choices.values()):
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        found += _leaves(nested[0]) if nested else [command]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    if getattr(args, "revision", "x") is None:
        args.revision = "base" if args.down else "head"
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
