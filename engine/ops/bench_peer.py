"""The llama.cpp peer of the generation benchmark: the same GGUF file, the same prompts.

llama-cpp-python comes from the optional ``bench`` extra; it has no binary wheel for
every platform and usually compiles llama.cpp from source when installed. The peer runs
the prompt text the worker rendered (chat template included) as a raw completion, one
job after the other, with the benchmark's token budget, temperature, top-p, top-k and
repetition penalty, on as many threads as torch uses. Only its best case is measured:
one stream.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.settings import Settings
from engine.worker.model.errors import ModelNotAvailable
from engine.worker.model.loading import resolve_model_source

log = logging.getLogger(__name__)

PEERS = ("llama-cpp",)
LLAMA_CPP = "llama-cpp"
INSTALL_HINT = (
    "--peer llama-cpp needs llama-cpp-python: install it with pip install -e '.[bench]' "
    "(pip compiles llama.cpp from source, about 5-10 minutes on 2 cores)"
)
_CONTEXT_STEP = 512

Progress = Callable[[str], None]


class PeerUnavailable(RuntimeError):
    """The peer cannot run here; the message says what to do."""


@dataclass(frozen=True)
class PeerReport:
    """What the peer did on the benchmark's single-stream prompts."""

    name: str
    version: str
    threads: int
    jobs: int
    tokens: int
    seconds: float
    prompt_tokens: tuple[int, ...]

    @property
    def single_stream_tps(self) -> float:
        """Return the tokens generated per second of wall time, prompt reading included."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def llama_cpp_version() -> str:
    """Return the installed llama-cpp-python's version, or raise PeerUnavailable."""
    try:
        importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise PeerUnavailable(INSTALL_HINT) from exc
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def peer_gguf(settings: Settings) -> Path:
    """Return the GGUF file the configured model comes from (the peer runs that file)."""
    try:
        source = resolve_model_source(settings.model)
    except ModelNotAvailable as exc:
        raise PeerUnavailable(str(exc)) from exc
    if source.kind != "gguf":
        raise PeerUnavailable(
            "the llama.cpp peer runs the model's own GGUF file: use the bundled model "
            "(TALEWEAVER_MODEL=smollm2-135m) or TALEWEAVER_MODEL=/path/to/model.gguf"
        )
    return Path(source.location)


def check_peer(name: str, settings: Settings) -> Path:
    """Fail fast, before a long run, when the named peer cannot run; return its GGUF."""
    if name != LLAMA_CPP:
        raise PeerUnavailable(f"unknown peer {name!r}; use one of {', '.join(PEERS)}")
    llama_cpp_version()
    return peer_gguf(settings)


def run_llama_cpp(
    gguf: Path,
    prompts: Sequence[str],
    *,
    warmup: str | None,
    longest_prompt_tokens: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    repeat_penalty: float,
    threads: int,
    seed: int,
    progress: Progress | None = None,
) -> PeerReport:
    """Generate for each prompt in turn with llama.cpp; return tokens and wall time."""
    version = llama_cpp_version()
    llama_cpp: Any = importlib.import_module("llama_cpp")
    # Room for the longest prompt and its passage, with a margin: llama.cpp's own count
    # of a prompt may differ from the worker tokenizer's by a token or two.
    needed = longest_prompt_tokens + max_new_tokens + 64
    n_ctx = -(-needed // _CONTEXT_STEP) * _CONTEXT_STEP
    model = llama_cpp.Llama(
        model_path=str(gguf),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        seed=seed,
        verbose=False,
    )
    try:

        def complete(prompt: str, job: int) -> tuple[int, int, float]:
            started = time.perf_counter()
            # The prompt holds the chat template's role markers; a raw completion reads
            # them as special tokens, as the worker's tokenizer does.
            answer = model.create_completion(
                prompt,
                max_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                # transformers' sampling has no min-p; llama.cpp's default would narrow it.
                min_p=0.0,
                repeat_penalty=repeat_penalty,
                seed=seed + job,
            )
            seconds = time.perf_counter() - started
            usage = answer["usage"]
            return int(usage["completion_tokens"]), int(usage["prompt_tokens"]), seconds

        if warmup is not None:
            complete(warmup, 0)
        tokens = 0
        seconds = 0.0
        prompt_tokens = []
        for job, prompt in enumerate(prompts, start=1):
            generated, read, spent = complete(prompt, job)
            tokens += generated
            seconds += spent
            prompt_tokens.append(read)
            if progress is not None:
                progress(
                    f"  llama.cpp job {job}/{len(prompts)}: {generated} tokens after a "
                    f"{read}-token prompt in {spent:.2f} s ({generated / spent:.1f} tokens/s)"
                )
    finally:
        close = getattr(model, "close", None)
        if close is not None:
            close()
    return PeerReport(
        name=LLAMA_CPP,
        version=version,
        threads=threads,
        jobs=len(prompts),
        tokens=tokens,
        seconds=seconds,
        prompt_tokens=tuple(prompt_tokens),
    )
