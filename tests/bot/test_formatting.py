from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import discord
import pytest

from bot.discord.formatting import (
    EMBED_DESCRIPTION_LIMIT,
    EMBED_FIELD_VALUE_LIMIT,
    EMBED_FIELDS_LIMIT,
    EMBED_TOTAL_LIMIT,
    config_embed,
    describe_settings,
    discord_timestamp,
    format_duration,
    lore_embed,
    recap_embed,
    status_embed,
    truncate,
    turn_prompt,
)
from engine.rules.guild_config import GuildConfig
from engine.story.views import LoreView, Recap, SummaryView
from storage.models import SessionStatus


def assert_within_limits(embed: discord.Embed) -> None:
    assert len(embed) <= EMBED_TOTAL_LIMIT
    assert len(embed.description or "") <= EMBED_DESCRIPTION_LIMIT
    assert len(embed.fields) <= EMBED_FIELDS_LIMIT
    for embed_field in embed.fields:
        assert 0 < len(embed_field.value or "") <= EMBED_FIELD_VALUE_LIMIT
        assert 0 < len(embed_field.name or "") <= 256
    assert len(embed.title or "") <= 256


def test_timestamp_uses_discord_markup() -> None:
    moment = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert discord_timestamp(moment) == f"<t:{int(moment.timestamp())}:R>"
    assert discord_timestamp(moment, "f").endswith(":f>")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (45, "45 s"),
        (90, "90 s"),
        (300, "5 min"),
        (3600, "1 h"),
        (5400, "1 h 30 min"),
        (86400, "1 day"),
        (172800, "2 days"),
        (90000, "25 h"),
    ],
)
def test_durations_read_naturally(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_truncate_keeps_short_text_and_marks_cuts() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("a fairly long sentence about the sea", 20)
    assert len(cut) <= 20 and cut.endswith("…")


def test_turn_prompt_pings_only_the_current_player(fake: SimpleNamespace) -> None:
    ping = turn_prompt(fake.session_view(current=2), via_messages=True)
    assert ping is not None
    assert "<@2>" in ping.content and "<t:" in ping.content
    mentions = ping.allowed_mentions.to_dict()
    assert mentions["users"] == [2]
    assert mentions["parse"] == []


def test_turn_prompt_names_the_slash_command_without_message_content(
    fake: SimpleNamespace,
) -> None:
    ping = turn_prompt(fake.session_view(current=2), via_messages=False)
    assert ping is not None and "/story write" in ping.content and "here" not in ping.content


@pytest.mark.parametrize(
    "kwargs",
    [
        {"current": 2, "narrator_job_id": "job"},
        {"current": 2, "status": SessionStatus.PAUSED},
        {"current": None},
    ],
)
def test_no_turn_prompt_when_nobody_may_write(fake: SimpleNamespace, kwargs: dict) -> None:
    assert turn_prompt(fake.session_view(**kwargs), via_messages=True) is None


def test_status_embed_shows_rotation_and_deadline(fake: SimpleNamespace) -> None:
    embed = status_embed(fake.session_view(current=2))
    text = str(embed.to_dict())
    assert "Alice" in text and "Bob" in text and "<t:" in text and "<@2>" in text
    assert_within_limits(embed)


def test_status_embed_of_a_crowded_story_stays_within_limits(fake: SimpleNamespace) -> None:
    players = tuple(fake.participant(i, i, f"Player {'x' * 28} {i}") for i in range(1, 200))
    embed = status_embed(fake.session_view(players=players, current=5, title="T" * 300))
    assert_within_limits(embed)
    assert "more" in str(embed.to_dict())


def test_status_embed_escapes_markdown_in_names(fake: SimpleNamespace) -> None:
    players = (fake.participant(1, 1, "**bold** @everyone"), fake.participant(2, 2, "Bob"))
    text = str(status_embed(fake.session_view(players=players, current=2)).to_dict())
    assert "**bold**" not in text and "@everyone" not in text


def test_recap_keeps_the_newest_turns_within_limits(fake: SimpleNamespace) -> None:
    turns = tuple(fake.narrator_turn(n, f"passage {n} " + "words " * 300) for n in range(1, 20))
    recap = Recap(
        session=fake.session_view(current=1),
        summary=SummaryView("The keeper " * 400, 10, datetime(2026, 1, 1, tzinfo=UTC)),
        recent_turns=turns,
    )
    embed = recap_embed(recap)
    assert_within_limits(embed)
    assert "passage 19" in (embed.description or "")
    assert "So far" in (embed.description or "")


def test_config_embed_lists_every_setting() -> None:
    config = GuildConfig(sampling={"temperature": 0.7}, moderator_role_id=555)
    embed = config_embed(config)
    shown = str(embed.to_dict())
    for name in GuildConfig.model_fields:
        assert f"`{name}`" in shown
    assert "<@&555>" in shown and "temperature = 0.7" in shown
    assert_within_limits(embed)


def test_describe_settings_names_the_changes() -> None:
    text = describe_settings(GuildConfig(turn_timeout_seconds=3600), ["turn_timeout_seconds"])
    assert "3600 s (1 h)" in text


def test_lore_embed_caps_fields_and_total() -> None:
    entries = [
        LoreView(f"Entry {i}", ("kw",) * 3, "lore text " * 150, created_by=1) for i in range(40)
    ]
    embed = lore_embed("The Lantern", entries)
    assert_within_limits(embed)
    assert embed.footer.text and "not shown" in embed.footer.text


def test_empty_lore_says_how_to_add_some() -> None:
    assert "/story lore add" in (lore_embed("T", []).description or "")
