"""A runtime for cog tests: the real story services and table over a fake narrator."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from engine.table import StoryTable


def table_runtime(story_db: SimpleNamespace, narrator: Any) -> SimpleNamespace:
    """Return what cogs use of StoryRuntime: story, configs, the table and the narrator."""
    return SimpleNamespace(
        story=story_db.story,
        configs=story_db.configs,
        narrator=narrator,
        table=StoryTable(story_db.story, narrator),
    )
