from __future__ import annotations

import pytest

from engine.errors import InvalidSetting, PermissionDenied
from engine.rules.guild_config import GuildConfigService
from storage.models import NarratorCadence

from support.stories import ALICE, GUILD, MOD


async def test_defaults_apply_before_anything_is_stored(config_service: GuildConfigService) -> None:
    config = await config_service.get(GUILD)
    assert config.narrator_cadence == NarratorCadence.EVERY_TURN
    assert config.max_turn_chars == 1500


async def test_moderator_changes_are_stored(config_service: GuildConfigService) -> None:
    await config_service.update(GUILD, MOD, turn_timeout_seconds=120, sampling={"temperature": 0.5})
    config = await config_service.get(GUILD)
    assert config.turn_timeout_seconds == 120 and config.sampling == {"temperature": 0.5}


async def test_player_cannot_change_configuration(config_service: GuildConfigService) -> None:
    with pytest.raises(PermissionDenied, match="Only moderators"):
        await config_service.update(GUILD, ALICE, turn_timeout_seconds=120)
    assert (await config_service.get(GUILD)).turn_timeout_seconds == 86400


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"turn_timeout_seconds": 5}, "turn_timeout_seconds"),
        ({"min_turn_chars": 500, "max_turn_chars": 100}, "must not exceed"),
        ({"narrator_cadence": "sometimes"}, "narrator_cadence"),
        ({"sampling": {"temperature": 7}}, "temperature"),
        ({"sampling": {"warp_speed": 1}}, "Unknown sampling setting"),
        ({"colour": "blue"}, "Unknown setting"),
        ({"max_repeated_characters": 2}, "max_repeated_characters"),
        ({"max_repeated_words": 1}, "max_repeated_words"),
        ({"max_emoji": -1}, "max_emoji"),
        ({"max_combining_marks": 0}, "max_combining_marks"),
        ({"max_emoji": "many"}, "max_emoji"),
    ],
)
async def test_malformed_configuration_is_refused_and_changes_nothing(
    config_service: GuildConfigService, changes: dict[str, object], message: str
) -> None:
    before = await config_service.get(GUILD)
    with pytest.raises(InvalidSetting, match=message):
        await config_service.update(GUILD, MOD, **changes)
    assert await config_service.get(GUILD) == before


async def test_unknown_default_genre_is_refused(config_service: GuildConfigService) -> None:
    with pytest.raises(InvalidSetting, match="fantasy"):
        await config_service.update(GUILD, MOD, default_genre="westernz")
    assert (await config_service.get(GUILD)).default_genre == "fantasy"
