"""The real bundled SmolLM2 model, converted once per test session and run in NF4 on CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from engine.protocol.sampling import SamplingSettings
from engine.worker.model.generator import BatchGenerator, GenerationRequest
from engine.worker.model.loading import LoadedModel, cpu_has_native_bf16, load_model
from engine.worker.model.stopping import StopPolicy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundled_nf4(bundled_cache_dir: Path) -> LoadedModel:
    return load_model("smollm2-135m", quantization="nf4", device="cpu", cache_dir=bundled_cache_dir)


def test_first_load_converts_the_gguf_into_the_cache(
    bundled_nf4: LoadedModel, bundled_cache_dir: Path
) -> None:
    assert bundled_nf4.converted
    assert Path(bundled_nf4.source).parent == bundled_cache_dir / "models"
    assert (Path(bundled_nf4.source) / "model.safetensors").is_file()
    assert bundled_nf4.has_chat_template
    assert bundled_nf4.context_window == 8192
    assert bundled_nf4.model.is_quantized


def test_bundled_model_continues_a_story(bundled_nf4: LoadedModel) -> None:
    prompt = bundled_nf4.render_chat(
        [
            {"role": "system", "content": "You narrate a fantasy story in vivid prose."},
            {"role": "user", "content": "Mira pushes open the creaking lighthouse door."},
        ]
    )
    settings = SamplingSettings(max_new_tokens=24)
    partials: list[str] = []

    result = BatchGenerator(bundled_nf4).generate_batch(
        [GenerationRequest("story", prompt, settings, StopPolicy(player_names=("Mira",)))],
        lambda _rid, text: partials.append(text),
        seed=7,
    )[0]

    assert result.finish_reason in {"stop", "length"}
    assert 0 < result.new_tokens <= 24
    assert result.text.strip()
    assert "<|im" not in result.text
    assert partials


def test_second_load_uses_the_cached_conversion(
    bundled_nf4: LoadedModel, bundled_cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="engine.worker.model.loading")

    again = load_model(
        "smollm2-135m", quantization="nf4", device="cpu", cache_dir=bundled_cache_dir
    )

    assert not again.converted
    assert again.source == bundled_nf4.source
    assert "Converting" not in caplog.text


def test_a_gguf_file_path_loads_like_the_bundled_name(
    bundled_nf4: LoadedModel, bundled_cache_dir: Path
) -> None:
    from engine.worker.model.loading import bundled_gguf_path

    by_path = load_model(
        str(bundled_gguf_path()), quantization="nf4", device="cpu", cache_dir=bundled_cache_dir
    )

    assert by_path.source == bundled_nf4.source  # the same cached conversion
    assert not by_path.converted


def test_default_nf4_keeps_all_but_the_inner_widening_projections_in_full_precision(
    bundled_nf4: LoadedModel,
) -> None:
    # bf16 where the CPU computes it in hardware, fp32 elsewhere (emulated bf16 is slow).
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    layers = bundled_nf4.model.model.layers
    middle = layers[len(layers) // 2]

    assert type(middle.mlp.gate_proj).__name__ == "Linear4bit"
    assert type(middle.mlp.up_proj).__name__ == "Linear4bit"
    for kept in (middle.mlp.down_proj, middle.self_attn.q_proj, layers[0].mlp.gate_proj):
        assert type(kept).__name__ == "Linear"
        assert kept.weight.dtype == expected
