"""Fixtures: a tiny Llama model built in-test, and a session cache for the bundled model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.worker.model.loading import LoadedModel, load_model

from support.tiny_model import build_tiny_model

TINY_CONTEXT = 256


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), context=TINY_CONTEXT)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model(
        str(tiny_model_dir),
        quantization="none",
        device="cpu",
        cache_dir=tmp_path_factory.mktemp("tiny-cache"),
    )


@pytest.fixture(scope="session")
def bundled_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("bundled-cache")
    yield cache
    # The converted copy is 540 MB; pytest would keep it in its last three base dirs.
    shutil.rmtree(cache, ignore_errors=True)
