"""The pytest fixture: a started double that fails the test on any recorded violation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .server import DiscordDouble
from .spec import SPEC_ENV, ApiSpec, load_spec, locate_spec
from conftest import service_missing


def require_spec() -> ApiSpec:
    """Return the loaded spec; skip the test without it (fail in CI)."""
    path = locate_spec()
    if path is None:
        service_missing(
            "Discord's OpenAPI spec",
            FileNotFoundError(f"set {SPEC_ENV} or put it at ../shared/discord-api/openapi.json"),
        )
        raise AssertionError("unreachable: service_missing skips or fails")
    return load_spec(path)


@pytest.fixture
async def discord_double() -> AsyncIterator[DiscordDouble]:
    """Yield a running Discord API double; fail the test if the bot broke Discord's rules."""
    double = DiscordDouble(require_spec())
    async with double:
        yield double
    fail_on_violations(double)


def fail_on_violations(double: DiscordDouble) -> None:
    """Fail the running test when the double recorded requests Discord would reject."""
    if double.violations:
        listing = "\n".join(f"  - {v}" for v in double.violations)
        pytest.fail(
            f"the bot made {len(double.violations)} request(s) Discord would reject:\n{listing}",
            pytrace=False,
        )
