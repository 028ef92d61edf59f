"""Finding the spec, routing paths to operations, and checking command definitions."""

from __future__ import annotations

from pathlib import Path

import discord
import pytest

from discord_double import DiscordDouble, validate_command_definitions
from discord_double import spec as spec_module
from discord_double.fixture import fail_on_violations, require_spec, service_missing
from discord_double.spec import ApiSpec
from discord_double.story_bot import StoryBot


@pytest.fixture
def api_spec() -> ApiSpec:
    return require_spec()


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/channels/1/messages", "/channels/{channel_id}/messages"),
        ("GET", "/users/@me", "/users/@me"),
        ("GET", "/users/42", "/users/{user_id}"),
        (
            "PATCH",
            "/webhooks/1/tok/messages/@original",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
        ),
        (
            "PUT",
            "/channels/1/messages/2/reactions/\N{OPEN BOOK}/@me",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me",
        ),
    ],
)
def test_paths_route_to_the_most_literal_operation(
    api_spec: ApiSpec, method: str, path: str, template: str
) -> None:
    found = api_spec.find_operation(method, path)
    assert found is not None and found[0].template == template


def test_interaction_callbacks_need_no_bot_token(api_spec: ApiSpec) -> None:
    callback = api_spec.find_operation("POST", "/interactions/1/t/callback")
    create = api_spec.find_operation("POST", "/channels/1/messages")
    assert callback is not None and not callback[0].bot_token_required
    assert create is not None and create[0].bot_token_required


def test_body_errors_name_the_field_and_the_limit(api_spec: ApiSpec) -> None:
    found = api_spec.find_operation("POST", "/interactions/1/t/callback")
    assert found is not None
    body = {"type": 4, "data": {"content": "x" * 2001}}
    assert api_spec.validate_body(found[0], "application/json", body) == [
        "data/content: 2001 characters, more than the limit of 2000"
    ]


def test_snowflakes_may_be_integers_as_discord_accepts(api_spec: ApiSpec) -> None:
    found = api_spec.find_operation("POST", "/channels/1/messages")
    assert found is not None
    body = {"content": "hi", "attachments": [{"id": 0, "filename": "a.txt"}]}
    assert api_spec.validate_body(found[0], "multipart/form-data", body) == []


def test_query_and_path_parameters_are_checked(api_spec: ApiSpec) -> None:
    found = api_spec.find_operation("GET", "/channels/None/messages")
    assert found is not None
    operation, params = found
    assert api_spec.validate_path_parameters(operation, params) == [
        "path channel_id: 'None' does not match '^(0|[1-9][0-9]*)$'"
    ]
    assert api_spec.validate_query(operation, {"limit": "500"}) == [
        "query parameter limit: 500 is greater than the maximum of 100"
    ]


def test_the_test_bots_commands_pass(api_spec: ApiSpec) -> None:
    bot = StoryBot(guild_id=1)
    commands = bot.tree.get_commands(guild=discord.Object(1))
    assert validate_command_definitions([c.to_dict(bot.tree) for c in commands], api_spec) == []


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ({"name": "Story", "description": "d"}, "must be 1-32 lowercase"),
        ({"name": "story", "description": ""}, "need a description"),
        ({"name": "story", "description": "d" * 101}, "101 characters"),
        (
            {
                "name": "story",
                "description": "d",
                "options": [
                    {"type": 3, "name": "a", "description": "d"},
                    {"type": 3, "name": "b", "description": "d", "required": True},
                ],
            },
            "required option 'b' after optional",
        ),
        (
            {
                "name": "story",
                "description": "d",
                "options": [
                    {
                        "type": 3,
                        "name": "genre",
                        "description": "d",
                        "choices": [{"name": f"c{i}", "value": "v" * 200} for i in range(25)],
                    }
                ],
            },
            "over Discord's limit of 4000",
        ),
    ],
)
def test_bad_command_definitions_are_reported(
    api_spec: ApiSpec, definition: dict[str, object], problem: str
) -> None:
    problems = validate_command_definitions([definition], api_spec)
    assert any(problem in p for p in problems), problems


def test_spec_is_found_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api_spec: ApiSpec
) -> None:
    copy = tmp_path / "openapi.json"
    copy.write_bytes(api_spec.path.read_bytes())
    monkeypatch.setenv(spec_module.SPEC_ENV, str(copy))
    assert spec_module.locate_spec() == copy


@pytest.mark.parametrize("in_ci", [True, False])
def test_missing_spec_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, in_ci: bool
) -> None:
    monkeypatch.delenv(spec_module.SPEC_ENV, raising=False)
    monkeypatch.setattr(spec_module, "DEFAULT_SPEC_PATH", tmp_path / "missing.json")
    # tests/conftest.py can be loaded more than once under the name "conftest" (pytest's
    # importlib mode); patch the copy whose function require_spec actually calls.
    monkeypatch.setitem(service_missing.__globals__, "IN_CI", in_ci)
    expected = pytest.fail.Exception if in_ci else pytest.skip.Exception
    with pytest.raises(expected, match="OpenAPI spec"):
        require_spec()


async def test_recorded_violations_fail_the_test(api_spec: ApiSpec) -> None:
    double = DiscordDouble(api_spec)
    double.record_violation("POST /channels/1/messages: content: too long")
    with pytest.raises(pytest.fail.Exception, match="content: too long"):
        fail_on_violations(double)
