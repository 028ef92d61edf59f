"""Export stories as files, for the people allowed to read them."""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable
from pathlib import PurePosixPath

from engine.actors import Actor
from engine.errors import PermissionDenied, SessionNotFound
from engine.export.archive import build_archive, render_json
from engine.export.document import build_document
from engine.export.epub import render_epub
from engine.export.formats import (
    ExportFile,
    ExportFormat,
    ExportOptions,
    StoryChoice,
    filename_for,
)
from engine.export.html import render_html
from engine.export.text import render_markdown, render_text
from engine.rules.guild_config import GuildConfig, GuildConfigService, is_moderator
from engine.story.clock import Clock, utc_now
from engine.story.queries import StoryQueries
from engine.story.views import SessionView, StoryTranscript

log = logging.getLogger(__name__)

ZIP_MEDIA_TYPE = "application/zip"


def may_export(session: SessionView, actor: Actor, config: GuildConfig) -> bool:
    """Tell whether an actor may export a story: a player (even one who left), host or moderator."""
    return (
        actor.user_id == session.host_id
        or any(p.user_id == actor.user_id for p in session.participants)
        or is_moderator(actor, config)
    )


def _not_found(session_id: int) -> SessionNotFound:
    # The same words whether the story is missing or on another server: nothing leaks.
    return SessionNotFound(f"There is no story with id {session_id}.")


class ExportService:
    """Render stories to Markdown, plain text, HTML, EPUB or JSON."""

    def __init__(
        self, queries: StoryQueries, configs: GuildConfigService, *, clock: Clock = utc_now
    ) -> None:
        self._queries = queries
        self._configs = configs
        self._clock = clock

    async def export(
        self,
        session_id: int,
        fmt: ExportFormat,
        options: ExportOptions = ExportOptions(),  # noqa: B008 - frozen, so sharing is safe
        *,
        actor: Actor | None = None,
        guild_id: int | None = None,
    ) -> ExportFile:
        """Render a story; with an actor, only for its players, host or the server's moderators."""
        fmt = ExportFormat(fmt)
        transcript = await self._queries.transcript(session_id)
        config = await self._configs.get(transcript.session.guild_id)
        if actor is not None:
            if guild_id is None or transcript.session.guild_id != guild_id:
                raise _not_found(session_id)
            if not may_export(transcript.session, actor, config):
                raise PermissionDenied(
                    "Only the story's players, its host or a moderator can export it."
                )
        data = self._render(transcript, config, fmt, options)
        log.info(
            "session %s exported as %s (%d bytes) by %s",
            session_id,
            fmt,
            len(data),
            "the operator" if actor is None else actor.user_id,
        )
        return ExportFile(
            filename=filename_for(transcript.session.title, fmt),
            media_type=fmt.media_type,
            data=data,
        )

    def _render(
        self,
        transcript: StoryTranscript,
        config: GuildConfig,
        fmt: ExportFormat,
        options: ExportOptions,
    ) -> bytes:
        if fmt is ExportFormat.JSON:
            archive = build_archive(transcript, config, exported_at=self._clock())
            return render_json(archive)
        document = build_document(transcript, options)
        renderers: dict[ExportFormat, Callable[..., str]] = {
            ExportFormat.MARKDOWN: render_markdown,
            ExportFormat.TEXT: render_text,
            ExportFormat.HTML: render_html,
        }
        if fmt is ExportFormat.EPUB:
            return render_epub(document)
        return renderers[fmt](document).encode("utf-8")

    async def find(
        self, guild_id: int, actor: Actor, query: str = "", *, limit: int = 25
    ) -> list[StoryChoice]:
        """Return this server's stories the actor may export whose title contains QUERY."""
        config = await self._configs.get(guild_id)
        needle = query.strip().casefold()
        stories = [
            s
            for s in await self._queries.list_sessions(guild_id)
            if needle in s.title.casefold() and may_export(s, actor, config)
        ]
        stories.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return [
            StoryChoice(session_id=s.id, title=s.title, status=s.status, created_at=s.created_at)
            for s in stories[: max(limit, 0)]
        ]


def zip_export(file: ExportFile) -> ExportFile:
    """Return a deflate-compressed zip holding the file, for uploads over a size limit."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(file.filename, file.data)
    stem = PurePosixPath(file.filename).stem or "story"
    return ExportFile(filename=f"{stem}.zip", media_type=ZIP_MEDIA_TYPE, data=buffer.getvalue())
