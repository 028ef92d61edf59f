from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from discord.ext import commands
from pydantic import ValidationError

from bot.discord.app import (
    BotOptions,
    ShardedTaleweaverBot,
    TaleweaverBot,
    build_intents,
    make_bot,
)
from bot.discord.components import DYNAMIC_ITEMS
from engine.settings import Settings
from engine.story.lore import (
    MAX_LORE_KEYWORD_CHARS,
    MAX_LORE_KEYWORDS,
    MAX_LORE_NAME_CHARS,
    MAX_LORE_TEXT_CHARS,
)

NAME = re.compile(r"^[-_\w]{1,32}$")


class FakeRuntime:
    def __init__(self) -> None:
        self.story = SimpleNamespace()
        self.exports = SimpleNamespace()
        self.configs = SimpleNamespace()
        self.timers = SimpleNamespace(on_reminder=None)
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def started_bot(**options: Any) -> tuple[TaleweaverBot, FakeRuntime, list[Any]]:
    runtime = FakeRuntime()
    opened_with: list[Any] = []

    async def factory(listener: Any, on_timeout: Any) -> Any:
        opened_with.extend([listener, on_timeout])
        return runtime

    bot = TaleweaverBot(
        Settings(),
        options=BotOptions(sync_commands=False, **options),
        runtime_factory=factory,
    )
    await bot.setup_hook()
    return bot, runtime, opened_with


def test_intents_are_minimal() -> None:
    with_content = build_intents(message_content=True)
    assert {name for name, on in with_content if on} == {
        "guilds",
        "guild_messages",
        "message_content",
    }
    without = build_intents(message_content=False)
    assert {name for name, on in without if on} == {"guilds", "guild_messages"}
    members = build_intents(message_content=False, members=True)
    assert {name for name, on in members if on} == {"guilds", "guild_messages", "members"}


async def test_the_members_intent_is_asked_for_only_when_set() -> None:
    bot, _, _ = await started_bot(members_intent=True)
    try:
        assert bot.intents.members
    finally:
        await bot.close()
    bot, _, _ = await started_bot()
    try:
        assert not bot.intents.members
    finally:
        await bot.close()


async def test_setup_opens_the_runtime_and_loads_every_feature() -> None:
    bot, runtime, opened_with = await started_bot()
    try:
        assert opened_with == [bot.narration, bot.narration.timed_out]
        assert runtime.timers.on_reminder == bot.narration.turn_reminder
        assert bot.runtime is runtime
        assert set(bot.cogs) == {"StoryCog", "StoryConfigCog", "TurnsCog", "DeparturesCog"}
        registered = set(bot._connection._view_store._dynamic_items.values())
        assert registered == set(DYNAMIC_ITEMS)
        assert bot.allowed_mentions is not None
        assert bot.allowed_mentions.to_dict() == {"parse": []}
    finally:
        await bot.close()
    assert runtime.closed


async def test_without_message_content_turns_come_only_from_slash_commands() -> None:
    bot, _, _ = await started_bot(message_content=False)
    try:
        assert "TurnsCog" not in bot.cogs
        assert not bot.intents.message_content
        assert not bot.via_messages
    finally:
        await bot.close()


def test_runtime_is_unavailable_before_setup() -> None:
    bot = TaleweaverBot(Settings())
    with pytest.raises(RuntimeError):
        _ = bot.runtime


@pytest.fixture
async def command_payloads() -> list[dict[str, Any]]:
    bot, _, _ = await started_bot()
    try:
        return [command.to_dict(bot.tree) for command in bot.tree.get_commands()]
    finally:
        await bot.close()


def walk_options(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for option in options:
        found.append(option)
        found.extend(walk_options(option.get("options", [])))
    return found


def text_size(payload: dict[str, Any]) -> int:
    size = len(payload["name"]) + len(payload.get("description", ""))
    for option in walk_options(payload.get("options", [])):
        size += len(option["name"]) + len(option["description"])
        for choice in option.get("choices", []):
            size += len(choice["name"]) + len(str(choice["value"]))
    return size


def test_commands_are_the_two_groups(command_payloads: list[dict[str, Any]]) -> None:
    assert sorted(p["name"] for p in command_payloads) == ["story", "storyconfig"]


def test_every_command_and_option_is_described_and_well_named(
    command_payloads: list[dict[str, Any]],
) -> None:
    for payload in command_payloads:
        for option in [payload, *walk_options(payload.get("options", []))]:
            assert NAME.match(option["name"]) and option["name"] == option["name"].lower()
            assert 1 <= len(option["description"]) <= 100
            assert len(option.get("choices", [])) <= 25


def test_commands_fit_discords_size_limit(command_payloads: list[dict[str, Any]]) -> None:
    for payload in command_payloads:
        assert text_size(payload) <= 8000


def test_commands_are_for_servers_only(command_payloads: list[dict[str, Any]]) -> None:
    for payload in command_payloads:
        assert payload["contexts"] == [0]


def test_no_group_is_hidden_from_members_who_moderate_by_role(
    command_payloads: list[dict[str, Any]],
) -> None:
    # Moderators are Manage Server or the server's moderator role (README): a default
    # permission would hide /storyconfig from the role; the engine refuses everyone else.
    for payload in command_payloads:
        assert payload["default_member_permissions"] is None, payload["name"]


STRING, INTEGER, NUMBER = 3, 4, 10


def test_every_free_option_declares_the_engines_limits(
    command_payloads: list[dict[str, Any]],
) -> None:
    undeclared = []
    for payload in command_payloads:
        for option in walk_options(payload.get("options", [])):
            if option.get("choices"):
                continue  # Discord allows only the listed values
            if option["type"] == STRING and "max_length" not in option:
                undeclared.append(f"{payload['name']} {option['name']}: max_length")
            if option["type"] in (INTEGER, NUMBER) and not (
                "min_value" in option and "max_value" in option
            ):
                undeclared.append(f"{payload['name']} {option['name']}: min/max_value")
    assert undeclared == []


def test_limits_match_the_engines(command_payloads: list[dict[str, Any]]) -> None:
    story = next(p for p in command_payloads if p["name"] == "story")
    config = next(p for p in command_payloads if p["name"] == "storyconfig")
    lore = {o["name"]: o for o in walk_options(story["options"]) if o["name"] == "lore"}["lore"]
    add = next(o for o in lore["options"] if o["name"] == "add")
    limits = {o["name"]: o.get("max_length") for o in add["options"]}
    assert limits == {
        "name": MAX_LORE_NAME_CHARS,
        "text": MAX_LORE_TEXT_CHARS,
        "keywords": MAX_LORE_KEYWORDS * (MAX_LORE_KEYWORD_CHARS + 2),
    }
    remove = next(o for o in lore["options"] if o["name"] == "remove")
    assert remove["options"][0]["max_length"] == MAX_LORE_NAME_CHARS
    timeout = next(o for o in config["options"] if o["name"] == "timeout")
    amount = next(o for o in timeout["options"] if o["name"] == "amount")
    assert (amount["min_value"], amount["max_value"]) == (1, 604800)


def test_story_commands_are_all_there(command_payloads: list[dict[str, Any]]) -> None:
    story = next(p for p in command_payloads if p["name"] == "story")
    names = {o["name"] for o in story["options"]}
    assert names >= {
        "start",
        "join",
        "leave",
        "begin",
        "write",
        "status",
        "skip",
        "undo",
        "retry",
        "continue",
        "recap",
        "pause",
        "resume",
        "end",
        "export",
        "lore",
    }
    lore = next(o for o in story["options"] if o["name"] == "lore")
    assert {o["name"] for o in lore["options"]} == {"add", "list", "remove"}


async def test_members_over_the_command_limit_are_refused_and_audited(
    fake: SimpleNamespace,
) -> None:
    import discord

    from bot.discord.app import StoryCommandTree
    from engine.rules.guard import RateLimited
    from engine.rules.throttles import RateLimits, Throttles

    audited: list[RateLimited] = []

    async def record_rate_limit(limited: RateLimited) -> None:
        audited.append(limited)

    runtime = SimpleNamespace(
        throttles=Throttles(RateLimits(commands_per_minute=2), clock=lambda: 0.0),
        story=SimpleNamespace(guard=SimpleNamespace(record_rate_limit=record_rate_limit)),
    )
    client = SimpleNamespace(runtime=runtime)
    tree = StoryCommandTree.__new__(StoryCommandTree)  # the check needs no client wiring
    answers = []
    for _ in range(3):
        interaction = fake.Interaction(client, fake.Author(5, "Eve"))
        interaction.type = discord.InteractionType.application_command
        answers.append((await tree.interaction_check(interaction), interaction))
    assert [ok for ok, _ in answers] == [True, True, False]
    refused = answers[2][1].response.sent[0]
    assert refused["ephemeral"] and "too quickly" in refused["content"]
    assert [a.rule for a in audited] == ["rate:commands"]
    autocomplete = fake.Interaction(client, fake.Author(5, "Eve"))
    autocomplete.type = discord.InteractionType.autocomplete
    assert await tree.interaction_check(autocomplete), "suggestions are never limited"


@pytest.mark.parametrize(("shards", "sharded"), [(1, False), (2, True), (16, True)])
def test_one_shard_is_the_plain_bot_and_more_are_auto_sharded(shards: int, sharded: bool) -> None:
    bot = make_bot(Settings(), options=BotOptions(), shards=shards)
    assert isinstance(bot, ShardedTaleweaverBot) is sharded
    assert isinstance(bot, commands.AutoShardedBot) is sharded
    assert bot.shard_count == (shards if sharded else None)


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("4", 4)])
def test_the_shards_setting_is_auto_or_a_number(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: object
) -> None:
    monkeypatch.setenv("TALEWEAVER_DISCORD_SHARDS", value)
    assert Settings().discord_shards == expected


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_shards_setting_that_is_neither_auto_nor_a_positive_number_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TALEWEAVER_DISCORD_SHARDS", value)
    with pytest.raises(ValidationError):
        Settings()
