"""The content guard's audit records: stored safely, and never in the way of a refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.rules.guard import ContentGuard, ContentRefused, Where
from engine.rules.guild_config import GuildConfig
from engine.safety import TextKind
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
