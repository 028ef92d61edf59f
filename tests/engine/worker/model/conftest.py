"""Fixtures: a tiny Llama model built in-test, and a session cache for the bundled model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

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


@pytest.fixture
def favour_dragon(tiny_model: LoadedModel) -> Iterator[int]:
    """Bias the tiny model's lm_head towards " dragon" so that it writes it unless banned."""
    token_ids = tiny_model.tokenizer(" dragon", add_special_tokens=False)["input_ids"]
    assert len(token_ids) == 1
    token_id = token_ids[0]

    def add_bias(_module: Any, _inputs: Any, logits: torch.Tensor) -> torch.Tensor:
        biased = logits.clone()
        biased[..., token_id] += 30.0
        return biased

    handle = tiny_model.model.lm_head.register_forward_hook(add_bias)
    try:
        yield token_id
    finally:
        handle.remove()
