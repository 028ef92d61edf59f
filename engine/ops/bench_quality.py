"""Measure the narrator's quality: perplexity per quantization mode and passage rates.

Two parts, both on data shipped with the project (:mod:`engine.ops.quality_set`):

* For each quantization mode: perplexity on the held-out literary passages and on
  the story set's own text, the model's memory, and single-stream tokens/s.
* For the configured mode: one narrator passage per story and seed, generated through
  the worker's real :class:`NarratorJobProcessor` (prompt, batching, best-of-n and
  reranking as configured), each measured by :func:`check_passage`; plus the time to
  a finished passage for 8 stories at once with best-of-n against single sampling.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.ops.quality_set import QualityStory, load_held_out, load_story_set
from engine.queue.interfaces import GeneratedText
from engine.queue.jobs import GenerationJob
from engine.settings import Settings
from engine.worker.model.generator import BatchGenerator
from engine.worker.model.loading import LoadedModel, load_model
from engine.worker.processor import NarratorJobProcessor
from engine.worker.rerank.passage_checks import PassageCheck, Scene, check_passage, summarise_checks

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
DEFAULT_SEEDS = (11, 22, 33)
TIMING_STORIES = 8
_SPEED_TOKENS = 48
_RATE_KEYS = (
    "usable",
    "on_scene",
    "invented_names",
    "meta_talk",
    "lists",
    "too_short",
    "empty",
)


@dataclass(frozen=True)
class ModeFigures:
    """Perplexity, memory and speed of one quantization mode."""

    quantization: str
    perplexity_held_out: float
    perplexity_stories: float
    memory_mb: float
    tokens_per_s: float

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as a JSON-able dict."""
        return {
            "quantization": self.quantization,
            "perplexity_held_out": round(self.perplexity_held_out, 3),
            "perplexity_stories": round(self.perplexity_stories, 3),
            "memory_mb": round(self.memory_mb, 1),
            "tokens_per_s": round(self.tokens_per_s, 2),
        }


@dataclass(frozen=True)
class PassageFigures:
    """Rates over the narrator passages of the story set, and best-of-n's time cost."""

    quantization: str
    candidates: int
    seeds: tuple[int, ...]
    stories: int
    rates: dict[str, float]
    faults: dict[str, int]
    samples: tuple[tuple[str, str, tuple[str, ...]], ...] = field(default=())
    best_of_n_s: float = 0.0
    single_s: float = 0.0

    @property
    def time_ratio(self) -> float:
        """Return best-of-n's time to finished passages over single sampling's."""
        return self.best_of_n_s / self.single_s if self.single_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as a JSON-able dict."""
        return {
            "quantization": self.quantization,
            "candidates": self.candidates,
            "seeds": list(self.seeds),
            "stories": self.stories,
            "rates": {k: round(v, 4) for k, v in self.rates.items()},
            "faults": dict(self.faults),
            "timing_8_stories": {
                "best_of_n_s": round(self.best_of_n_s, 2),
                "single_s": round(self.single_s, 2),
                "ratio": round(self.time_ratio, 3),
            },
        }


@dataclass(frozen=True)
class QualityBenchReport:
    """Everything one quality benchmark run measured."""

    model: str
    device: str
    modes: tuple[ModeFigures, ...]
    passages: PassageFigures | None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as one JSON-able dict."""
        baseline = next((m for m in self.modes if m.quantization == "none"), None)
        modes = []
        for mode in self.modes:
            row = mode.to_dict()
            if baseline is not None and baseline.perplexity_held_out:
                row["perplexity_vs_none"] = round(
                    mode.perplexity_held_out / baseline.perplexity_held_out - 1, 4
                )
            modes.append(row)
        return {
            "model": self.model,
            "device": self.device,
            "modes": modes,
            "passages": None if self.passages is None else self.passages.to_dict(),
        }

    def format(self) -> str:
        """Return the report as markdown tables for the terminal and README."""
        data = self.to_dict()
        lines = [f"Narrator quality benchmark: {self.model} on {self.device}", ""]
        if data["modes"]:
            lines += [
                "| mode | perplexity held-out | vs none | perplexity stories | memory MB | "
                "tokens/s (1 stream) |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for row in data["modes"]:
                versus = row.get("perplexity_vs_none")
                lines.append(
                    f"| {row['quantization']} | {row['perplexity_held_out']:.2f} | "
                    f"{'' if versus is None else f'{versus:+.1%}'} | "
                    f"{row['perplexity_stories']:.2f} | {row['memory_mb']:.0f} | "
                    f"{row['tokens_per_s']:.1f} |"
                )
            lines.append("")
        if self.passages is not None:
            p = self.passages
            lines += [
                f"Narrator passages: {p.stories} stories x {len(p.seeds)} seeds, "
                f"{p.quantization}, best of {p.candidates}",
                "",
                "| measure | value |",
                "|---|---:|",
            ]
            for key in _RATE_KEYS:
                lines.append(f"| {key.replace('_', ' ')} | {p.rates[key]:.1%} |")
            for key in ("distinct_2", "earlier_overlap", "prompt_overlap"):
                lines.append(f"| {key.replace('_', ' ')} (mean) | {p.rates[key]:.3f} |")
            lines.append(f"| words per passage (mean) | {p.rates['mean_words']:.1f} |")
            if p.single_s:
                lines += [
                    "",
                    f"{TIMING_STORIES} stories at once: best of {p.candidates} finished in "
                    f"{p.best_of_n_s:.1f} s, single sampling in {p.single_s:.1f} s "
                    f"({p.time_ratio:.2f}x).",
                ]
            if p.samples:
                lines += ["", "Samples (story, passage, faults):"]
                for key, text, faults in p.samples:
                    shown = " ".join(text.split())
                    lines.append(f"- {key}: {shown[:300]} [{', '.join(faults) or 'usable'}]")
        return "\n".join(lines)


def perplexity(loaded: LoadedModel, texts: Sequence[str]) -> float:
    """Return the model's token-weighted perplexity over ``texts``, each scored alone."""
    total_nll = 0.0
    total_tokens = 0
    model = loaded.model
    with torch.inference_mode():
        for text in texts:
            ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
            ids = ids[:, : loaded.context_window].to(model.device)
            predicted = int(ids.shape[1]) - 1
            if predicted < 1:
                continue
            loss = model(input_ids=ids, labels=ids).loss
            total_nll += float(loss) * predicted
            total_tokens += predicted
    if not total_tokens:
        raise ValueError("no text to score")
    return math.exp(total_nll / total_tokens)


def _story_texts(stories: Sequence[QualityStory]) -> list[str]:
    return [f"{s.premise} {' '.join(t.text for t in s.turns)}" for s in stories]


def _jobs(stories: Sequence[QualityStory], tag: str) -> list[GenerationJob]:
    return [
        GenerationJob(job_id=f"{tag}-{s.key}", session_id=i, request=s.request())
        for i, s in enumerate(stories, start=1)
    ]


def _single_stream_tps(generator: BatchGenerator, stories: Sequence[QualityStory]) -> float:
    processor = NarratorJobProcessor(generator, seed=7, candidates=1)
    tokens = 0
    seconds = 0.0
    for story in stories[:2]:
        job = GenerationJob(
            job_id=f"speed-{story.key}",
            session_id=1,
            request=story.request(max_new_tokens=_SPEED_TOKENS),
        )
        started = time.perf_counter()
        processor([job], lambda _job, _text: None)
        seconds += time.perf_counter() - started
        tokens += processor.last_new_tokens
    return tokens / seconds if seconds else 0.0


def _measure_mode(
    settings: Settings, quantization: str, stories: Sequence[QualityStory], held_out: list[str]
) -> tuple[ModeFigures, LoadedModel]:
    loaded = load_model(
        settings.model,
        quantization=quantization,
        device=settings.device,
        cache_dir=settings.cache_dir,
    )
    generator = BatchGenerator(loaded, max_batch_size=1)
    figures = ModeFigures(
        quantization=quantization,
        perplexity_held_out=perplexity(loaded, held_out),
        perplexity_stories=perplexity(loaded, _story_texts(stories)),
        memory_mb=loaded.model.get_memory_footprint() / 1e6,
        tokens_per_s=_single_stream_tps(generator, stories),
    )
    return figures, loaded


def _passages(
    loaded: LoadedModel,
    stories: Sequence[QualityStory],
    *,
    seeds: Sequence[int],
    candidates: int,
    max_batch: int,
    progress: Progress,
) -> PassageFigures:
    generator = BatchGenerator(loaded, max_batch_size=max_batch)
    processor = NarratorJobProcessor(generator, candidates=candidates)
    checks: list[PassageCheck] = []
    samples: list[tuple[str, str, tuple[str, ...]]] = []
    for seed in seeds:
        progress(f"passages: seed {seed}, {len(stories)} stories, best of {candidates}…")
        processor.reseed(seed)
        jobs = _jobs(stories, f"q{seed}")
        outcomes = dict(processor(jobs, lambda _job, _text: None))
        for story, job in zip(stories, jobs, strict=True):
            outcome = outcomes[job.job_id]
            text = outcome.text if isinstance(outcome, GeneratedText) else ""
            check = check_passage(text, Scene.of(story.context()))
            checks.append(check)
            if seed == seeds[0]:
                samples.append((story.key, text, check.faults))
    rates = summarise_checks(checks)
    faults: dict[str, int] = {}
    for check in checks:
        for fault in check.faults:
            faults[fault] = faults.get(fault, 0) + 1
    timed = list(stories[:TIMING_STORIES])
    progress(f"timing: {len(timed)} stories at once, best of {candidates} vs single sampling…")
    single = _timed_batch(NarratorJobProcessor(generator, seed=seeds[0], candidates=1), timed)
    best = _timed_batch(
        NarratorJobProcessor(generator, seed=seeds[0], candidates=candidates), timed
    )
    return PassageFigures(
        quantization=loaded.quantization,
        candidates=candidates,
        seeds=tuple(seeds),
        stories=len(stories),
        rates=rates,
        faults=faults,
        samples=tuple(samples),
        best_of_n_s=best,
        single_s=single,
    )


def _timed_batch(processor: NarratorJobProcessor, stories: Sequence[QualityStory]) -> float:
    started = time.perf_counter()
    processor(_jobs(stories, "t"), lambda _job, _text: None)
    return time.perf_counter() - started


def benchmark_quality(
    settings: Settings,
    *,
    modes: Sequence[str],
    seeds: Sequence[int] = DEFAULT_SEEDS,
    candidates: int | None = None,
    passages: bool = True,
    stories_limit: int | None = None,
    progress: Progress | None = None,
) -> QualityBenchReport:
    """Run the quality benchmark; blocks for minutes on a CPU."""
    say = progress or (lambda message: log.info("%s", message))
    stories = load_story_set()[:stories_limit]
    held_out = list(load_held_out())
    figures: list[ModeFigures] = []
    default_loaded: LoadedModel | None = None
    device: str = settings.device
    for quantization in modes:
        say(f"mode {quantization}: loading, perplexity on {len(held_out)} held-out passages…")
        mode, loaded = _measure_mode(settings, quantization, stories, held_out)
        device = loaded.device
        figures.append(mode)
        say(
            f"mode {quantization}: perplexity {mode.perplexity_held_out:.2f}, "
            f"{mode.memory_mb:.0f} MB, {mode.tokens_per_s:.1f} tokens/s"
        )
        if quantization == settings.quantization:
            default_loaded = loaded
    passage_figures = None
    if passages:
        if default_loaded is None:
            say(f"loading {settings.model} ({settings.quantization}) for the passages…")
            default_loaded = load_model(
                settings.model,
                quantization=settings.quantization,
                device=settings.device,
                cache_dir=settings.cache_dir,
            )
            device = default_loaded.device
        passage_figures = _passages(
            default_loaded,
            stories,
            seeds=seeds,
            candidates=candidates or settings.narrator_candidates,
            max_batch=max(TIMING_STORIES, 1),
            progress=say,
        )
    return QualityBenchReport(
        model=settings.model, device=device, modes=tuple(figures), passages=passage_figures
    )
