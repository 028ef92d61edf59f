"""The content guard's audit records: stored safely, and never in the way of a refusal."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.rules.guard import ContentGuard, ContentRefused, Where
from engine.rules.guild_config import GuildConfig
from engine.safety import ProfanityClassifier, TextKind
from storage.database import create_engine, create_session_factory
from storage.models import ContentRating


async def test_a_failed_audit_insert_is_logged_and_the_refusal_still_reaches_the_player(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database without tables: every insert fails.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        guard = ContentGuard(create_session_factory(engine))
        with pytest.raises(ContentRefused) as refused:
            guard.check(
                GuildConfig(), ContentRating.EVERYONE, "x\x00", TextKind.TURN, Where(guild_id=1)
            )
        await guard.record_refusal(refused.value)
    finally:
        await engine.dispose()
    assert "could not store the audit record" in caplog.text


class _RecordingClassifier(ProfanityClassifier):
    """A classifier that notes which thread loaded it."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded_in: int | None = None

    def load(self) -> None:
        self.loaded_in = threading.get_ident()
        super().load()


async def test_the_classifier_is_loaded_in_a_worker_thread_before_the_first_check(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    classifier = _RecordingClassifier()
    try:
        guard = ContentGuard(create_session_factory(engine), classifier=classifier)
        assert not guard.classifier.loaded
        await guard.load_classifier()
    finally:
        await engine.dispose()
    assert classifier.loaded
    assert classifier.loaded_in is not None
    assert classifier.loaded_in != threading.get_ident(), "not on the event loop's thread"
