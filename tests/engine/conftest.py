from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService


@pytest.fixture
def service(session_factory: async_sessionmaker[AsyncSession], clock) -> StoryService:  # type: ignore[no-untyped-def]
    return StoryService.create(session_factory, clock=clock)


@pytest.fixture
def config_service(session_factory: async_sessionmaker[AsyncSession]) -> GuildConfigService:
    return GuildConfigService(session_factory)


@pytest.fixture(scope="session")
def narrator_tiny_model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A tiny model with a context window large enough for real narrator prompts."""
    from engine.worker.model.loading import load_model

    from support.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("narrator-tiny"), context=4096)
    return load_model(
        str(folder), quantization="none", device="cpu", cache_dir=tmp_path_factory.mktemp("c")
    )
