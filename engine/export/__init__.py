"""Story export: Markdown, plain text, HTML, EPUB and the JSON archive that import reads."""

from __future__ import annotations

from engine.export.formats import ExportFile, ExportFormat, ExportOptions, StoryChoice
from engine.export.service import ExportService, zip_export

__all__ = [
    "ExportFile",
    "ExportFormat",
    "ExportOptions",
    "ExportService",
    "StoryChoice",
    "zip_export",
]
