"""Decide how an exported story reaches the user: as is, zipped, or by the command line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.export import ExportFile, ExportFormat, ExportOptions

# discord.py's own default when an interaction does not say (10 MiB).
DEFAULT_ATTACHMENT_LIMIT = 10 * 1024 * 1024


@dataclass(frozen=True)
class ExportDelivery:
    """The file to attach (None when too large even zipped) and whether it was zipped."""

    file: ExportFile | None
    zipped: bool
    original_size: int
    delivered_size: int


def plan_delivery(
    file: ExportFile, limit: int, zipper: Callable[[ExportFile], ExportFile]
) -> ExportDelivery:
    """Attach FILE if it fits LIMIT bytes, else its zip if that fits, else nothing."""
    size = len(file.data)
    if size <= limit:
        return ExportDelivery(file, zipped=False, original_size=size, delivered_size=size)
    zipped = zipper(file)
    zipped_size = len(zipped.data)
    if zipped_size <= limit:
        return ExportDelivery(zipped, zipped=True, original_size=size, delivered_size=zipped_size)
    return ExportDelivery(None, zipped=True, original_size=size, delivered_size=zipped_size)


def cli_export_command(session_id: int, fmt: ExportFormat, options: ExportOptions) -> str:
    """Return the command an operator runs to export the same story on the bot's machine."""
    parts = ["taleweaver", "export", str(session_id), "--format", str(fmt)]
    if options.include_table_talk:
        parts.append("--table-talk")
    if options.include_alternatives:
        parts.append("--alternatives")
    return " ".join(parts)


def format_size(size: int) -> str:
    """Return a byte count in KiB or MiB, one decimal."""
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def too_large_message(
    delivery: ExportDelivery, limit: int, session_id: int, fmt: ExportFormat, options: ExportOptions
) -> str:
    """Explain that the export does not fit and give the exact command to get it."""
    return (
        f"This export is too large for Discord here ({format_size(delivery.original_size)}, "
        f"{format_size(delivery.delivered_size)} zipped; the limit is {format_size(limit)}). "
        "Ask whoever runs the bot to export it on its machine with:\n"
        f"`{cli_export_command(session_id, fmt, options)}`"
    )
