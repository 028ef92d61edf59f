from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.guild_config import GuildConfigService
from engine.sessions import SessionService


@pytest.fixture
def service(session_factory: async_sessionmaker[AsyncSession], clock) -> SessionService:  # type: ignore[no-untyped-def]
    return SessionService(session_factory, clock=clock)


@pytest.fixture
def config_service(session_factory: async_sessionmaker[AsyncSession]) -> GuildConfigService:
    return GuildConfigService(session_factory)
