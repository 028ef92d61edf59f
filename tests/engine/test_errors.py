from __future__ import annotations

import pytest

from engine.errors import OperatorError, StoryError
from engine.ops.database_admin import DatabaseUnavailable, migrate
from engine.queue.errors import QueueError, QueueUnavailable
from engine.worker.model.errors import (
    DeviceUnavailable,
    ModelFolderMissing,
    ModelLoadError,
    ModelNotAvailable,
    UnknownQuantization,
)


def test_operator_errors_are_not_refusals_to_show_players() -> None:
    assert not issubclass(OperatorError, StoryError)
    assert not issubclass(StoryError, OperatorError)


@pytest.mark.parametrize(
    "error",
    [
        DatabaseUnavailable,
        ModelLoadError,
        ModelNotAvailable,
        ModelFolderMissing,
        UnknownQuantization,
        DeviceUnavailable,
        QueueUnavailable,
    ],
)
def test_infrastructure_failures_are_operator_errors(error: type[Exception]) -> None:
    assert issubclass(error, OperatorError)
    assert not issubclass(error, StoryError)


def test_unreachable_queue_is_still_a_queue_error() -> None:
    assert issubclass(QueueUnavailable, QueueError)


def test_unreachable_queue_keeps_its_message() -> None:
    error = QueueUnavailable("redis://127.0.0.1:1/0", ConnectionRefusedError("refused"))
    assert str(error).startswith("Cannot reach the job queue at redis://127.0.0.1:1/0 (refused).")
    assert "TALEWEAVER_QUEUE_URL" in str(error)


async def test_missing_database_folder_is_an_operator_error() -> None:
    with pytest.raises(OperatorError, match="folder /nonexistent-dir does not exist"):
        await migrate("sqlite+aiosqlite:////nonexistent-dir/x.db")
