"""The values an export is asked for and hands back."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from storage.models import SessionStatus

MAX_SLUG_CHARS = 80


class ExportFormat(enum.StrEnum):
    """A file format a story can be exported to."""

    MARKDOWN = "markdown"
    TEXT = "text"
    HTML = "html"
    EPUB = "epub"
    JSON = "json"

    @property
    def extension(self) -> str:
        """Return the file name extension, with its dot."""
        return _EXTENSIONS[self]

    @property
    def media_type(self) -> str:
        """Return the MIME type of files in this format."""
        return _MEDIA_TYPES[self]

    @property
    def is_text(self) -> bool:
        """Tell whether files in this format are text that can go to a terminal."""
        return self is not ExportFormat.EPUB


_EXTENSIONS = {
    ExportFormat.MARKDOWN: ".md",
    ExportFormat.TEXT: ".txt",
    ExportFormat.HTML: ".html",
    ExportFormat.EPUB: ".epub",
    ExportFormat.JSON: ".json",
}

_MEDIA_TYPES = {
    ExportFormat.MARKDOWN: "text/markdown; charset=utf-8",
    ExportFormat.TEXT: "text/plain; charset=utf-8",
    ExportFormat.HTML: "text/html; charset=utf-8",
    ExportFormat.EPUB: "application/epub+zip",
    ExportFormat.JSON: "application/json",
}


@dataclass(frozen=True)
class ExportOptions:
    """What the reading formats include beyond the passages (JSON always has everything)."""

    include_table_talk: bool = False
    include_alternatives: bool = False


@dataclass(frozen=True)
class ExportFile:
    """A rendered export: a safe file name, its MIME type and its bytes."""

    filename: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class StoryChoice:
    """A story someone may export, as offered by autocomplete."""

    session_id: int
    title: str
    status: SessionStatus
    created_at: datetime


def slug(title: str) -> str:
    """Return a file-name-safe form of a title: ASCII letters, digits and dashes only."""
    # Decompose accents so "Café" becomes "cafe" rather than "caf".
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return cleaned[:MAX_SLUG_CHARS].rstrip("-") or "story"


def filename_for(title: str, fmt: ExportFormat) -> str:
    """Return the file name of a story exported in a format."""
    return slug(title) + fmt.extension
