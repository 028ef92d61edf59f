"""Generate narrator continuations for a batch of self-contained requests."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import LogitsProcessorList, StoppingCriteriaList

from engine.protocol.sampling import SamplingSettings
from engine.worker.model.loading import LoadedModel
from engine.worker.model.logits_processors import (
    BannedPhrases,
    BannedPhrasesProcessor,
    ContinuationNoRepeatNGram,
    TokenVocabulary,
)
from engine.worker.model.stopping import StopPolicy
from engine.worker.model.stopping_criteria import StopPolicyCriteria, cut_at_end_tokens

log = logging.getLogger(__name__)

FinishReason = Literal["stop", "length", "error", "cancelled"]
PartialCallback = Callable[[str, str], None]
REPLACEMENT_CHAR = "\ufffd"  # a multi-byte character whose bytes are not all generated yet
_BANNED_CACHE_SIZE = 64


@dataclass(frozen=True)
class GenerationRequest:
    """Ask for continuations of an already rendered prompt (``candidates`` of them)."""

    request_id: str
    prompt: str
    sampling: SamplingSettings
    stop: StopPolicy
    banned_phrases: tuple[str, ...] = ()
    candidates: int = 1


@dataclass(frozen=True)
class Candidate:
    """One sampled continuation, with the model's mean log-likelihood of its tokens."""

    text: str
    raw_text: str
    new_tokens: int
    mean_logprob: float


@dataclass(frozen=True)
class GenerationResult:
    """Carry a request's finished continuations and how they ended.

    ``text``, ``raw_text`` and ``finish_reason`` are the first candidate's;
    ``new_tokens`` counts the tokens of every candidate.
    """

    request_id: str
    text: str
    raw_text: str
    new_tokens: int
    finish_reason: FinishReason
    seconds: float
    candidates: tuple[Candidate, ...] = ()


class BatchGenerator:
    """Run batched, per-row stopped generation on one loaded model.

    Calls block: run them in a worker thread or executor, never on an event loop.
    ``on_partial`` is called on that same thread; hand its text over to a loop with
    ``loop.call_soon_threadsafe``. Beam search reports no partial text.
    """

    def __init__(
        self, loaded: LoadedModel, *, max_batch_size: int = 8, partial_every: int = 4
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.loaded = loaded
        self.max_batch_size = max_batch_size
        self.partial_every = partial_every
        tokenizer = loaded.tokenizer
        self._end_token_ids = _end_token_ids(loaded.model, tokenizer)
        self._special_tokens = sorted(
            (t for t in getattr(tokenizer, "all_special_tokens", []) if t), key=len, reverse=True
        )
        self._vocabulary: TokenVocabulary | None = None
        # Servers keep the same banned list from job to job: compile each list once.
        self._banned: dict[tuple[str, ...], BannedPhrases] = {}

    @property
    def end_token_ids(self) -> frozenset[int]:
        """Return the token ids that end a continuation (end of sequence, padding)."""
        return self._end_token_ids

    def banned_phrases(self, phrases: tuple[str, ...]) -> BannedPhrases | None:
        """Return the compiled form of a banned-phrase list (compiled once per list)."""
        return self._banned_phrases(phrases)

    def finalize(self, stop: StopPolicy, raw: str) -> str:
        """Return the text shown and stored for a raw continuation."""
        return self._finalize(stop, raw)

    def encode_prompt(self, prompt: str, max_new_tokens: int) -> list[int]:
        """Return a prompt's token ids, cut to the context window's budget from the start."""
        return list(self._encode_prompts([prompt], max_new_tokens)["input_ids"][0].tolist())

    def count_tokens(self, text: str) -> int:
        """Return how many tokens ``text`` takes in this model's prompt."""
        return self.loaded.count_tokens(text)

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """Render chat messages with the model's chat template (or a plain format)."""
        return self.loaded.render_chat(messages)

    def generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        on_partial: PartialCallback | None = None,
        *,
        seed: int | None = None,
    ) -> list[GenerationResult]:
        """Generate all requests, batching those with equal sampling settings, in order."""
        if seed is not None:
            torch.manual_seed(seed)
        groups: dict[tuple[SamplingSettings, int], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault((request.sampling, request.candidates), []).append(index)
        results: list[GenerationResult | None] = [None] * len(requests)
        for (sampling, _), indices in groups.items():
            for start in range(0, len(indices), self.max_batch_size):
                chunk = indices[start : start + self.max_batch_size]
                chunk_results = self._generate_chunk(
                    [requests[i] for i in chunk], sampling, on_partial
                )
                for index, result in zip(chunk, chunk_results, strict=True):
                    results[index] = result
        return [result for result in results if result is not None]

    def _generate_chunk(
        self,
        requests: list[GenerationRequest],
        sampling: SamplingSettings,
        on_partial: PartialCallback | None,
    ) -> list[GenerationResult]:
        started = time.perf_counter()
        try:
            return self._run_generate(requests, sampling, on_partial, started)
        except Exception:
            log.exception(
                "Generation failed for %d request(s): %s",
                len(requests),
                ", ".join(r.request_id for r in requests),
            )
            seconds = time.perf_counter() - started
            return [GenerationResult(r.request_id, "", "", 0, "error", seconds) for r in requests]

    def _run_generate(
        self,
        requests: list[GenerationRequest],
        sampling: SamplingSettings,
        on_partial: PartialCallback | None,
        started: float,
    ) -> list[GenerationResult]:
        tokenizer = self.loaded.tokenizer
        model = self.loaded.model
        batch = self._encode_prompts([r.prompt for r in requests], sampling.max_new_tokens)
        input_ids = batch["input_ids"].to(model.device)
        attention_mask = batch["attention_mask"].to(model.device)
        prompt_length = int(input_ids.shape[1])
        per_request = max(r.candidates for r in requests)
        extra: dict[str, Any] = {}
        if per_request > 1:
            # Candidates of one request share its prompt: read the prompt once and copy
            # its cache, instead of reading it once per candidate.
            extra["cache"] = self._prefill(input_ids, attention_mask, per_request)
            input_ids = input_ids.repeat_interleave(per_request, dim=0)
            attention_mask = attention_mask.repeat_interleave(per_request, dim=0)

        kwargs = sampling.to_generate_kwargs()
        # Our own processor below counts n-grams in the continuation only.
        ngram_size = int(kwargs.pop("no_repeat_ngram_size", 0))
        processors = LogitsProcessorList()
        if ngram_size > 0:
            processors.append(ContinuationNoRepeatNGram(ngram_size, prompt_length))
        # Candidates and beams of one request are adjacent rows; processors map rows
        # to requests by division.
        banned = BannedPhrasesProcessor([self._banned_phrases(r.banned_phrases) for r in requests])
        if not banned.is_empty:
            processors.append(banned)
        criteria = StopPolicyCriteria(
            tokenizer,
            prompt_length,
            [r.stop for r in requests],
            end_token_ids=self._end_token_ids,
            on_progress=None
            if sampling.num_beams > 1
            else self._progress_hook(requests, on_partial),
            progress_every=self.partial_every,
        )
        # Hooked for this call only: generators sharing one model never stack hooks.
        logprobs = _TokenLogprobs(int(input_ids.shape[0]))
        hook = model.register_forward_hook(logprobs.hook, with_kwargs=True)
        try:
            with torch.inference_mode():
                output = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    pad_token_id=tokenizer.pad_token_id,
                    logits_processor=processors,
                    stopping_criteria=StoppingCriteriaList([criteria]),
                    **kwargs,
                    **extra,
                )
        finally:
            hook.remove()
        row_logprobs = logprobs.finish(output[:, -1])
        seconds = time.perf_counter() - started
        rows = output[:, prompt_length:].tolist()
        results = []
        for index, request in enumerate(requests):
            candidates = []
            for offset in range(per_request):
                row = index * per_request + offset
                kept = cut_at_end_tokens(rows[row], self._end_token_ids)
                raw = criteria.decode_row(kept).rstrip(REPLACEMENT_CHAR)
                scores = row_logprobs[row][: len(kept)]
                candidates.append(
                    Candidate(
                        text=self._finalize(request.stop, raw),
                        raw_text=raw,
                        new_tokens=len(kept),
                        mean_logprob=sum(scores) / len(scores) if scores else float("-inf"),
                    )
                )
            first = candidates[0]
            first_row = rows[index * per_request]
            ended = first.new_tokens < len(first_row) or request.stop.should_stop(first.raw_text)
            results.append(
                GenerationResult(
                    request_id=request.request_id,
                    text=first.text,
                    raw_text=first.raw_text,
                    new_tokens=sum(c.new_tokens for c in candidates),
                    finish_reason="stop" if ended else "length",
                    seconds=seconds,
                    candidates=tuple(candidates),
                )
            )
        total = sum(r.new_tokens for r in results)
        log.debug(
            "Generated %d tokens for %d request(s) in %.2f s (%.1f tokens/s)",
            total,
            len(results),
            seconds,
            total / seconds if seconds else 0.0,
        )
        return results

    def _prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, copies: int) -> Any:
        """Return the cache of every prompt but its last token, repeated ``copies`` times."""
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            output = self.loaded.model(
                input_ids=input_ids[:, :-1],
                attention_mask=attention_mask[:, :-1],
                position_ids=positions[:, :-1],
                use_cache=True,
            )
        cache = getattr(output, "cache", None) or output.past_key_values
        cache.batch_repeat_interleave(copies)
        return cache

    def _banned_phrases(self, phrases: tuple[str, ...]) -> BannedPhrases | None:
        if not phrases:
            return None
        compiled = self._banned.get(phrases)
        if compiled is None:
            if self._vocabulary is None:
                self._vocabulary = TokenVocabulary.from_tokenizer(self.loaded.tokenizer)
            compiled = BannedPhrases(self._vocabulary, phrases)
            if len(self._banned) >= _BANNED_CACHE_SIZE:
                del self._banned[next(iter(self._banned))]
            self._banned[phrases] = compiled
        return compiled

    def _encode_prompts(self, prompts: list[str], max_new_tokens: int) -> Any:
        tokenizer = self.loaded.tokenizer
        budget = max(1, self.loaded.context_window - max_new_tokens)
        bos = getattr(tokenizer, "bos_token", None)
        encoded = []
        for prompt in prompts:
            # Chat templates usually write BOS themselves; adding it again confuses models.
            add_special = not (bos and prompt.startswith(bos))
            token_ids = tokenizer(prompt, add_special_tokens=add_special)["input_ids"]
            if len(token_ids) > budget:
                log.warning(
                    "Prompt of %d tokens exceeds the budget of %d; keeping its end",
                    len(token_ids),
                    budget,
                )
                token_ids = token_ids[-budget:]
            encoded.append({"input_ids": token_ids})
        return tokenizer.pad(encoded, padding=True, return_tensors="pt")

    def _progress_hook(
        self, requests: list[GenerationRequest], on_partial: PartialCallback | None
    ) -> Callable[[int, str], None] | None:
        if on_partial is None:
            return None
        last_sent: dict[int, str] = {}

        def report(index: int, raw: str) -> None:
            # With several candidates, the first one of each request is streamed.
            request = requests[index]
            text = request.stop.visible_text(raw.rstrip(REPLACEMENT_CHAR))
            if not text or last_sent.get(index) == text:
                return
            last_sent[index] = text
            try:
                on_partial(request.request_id, text)
            except Exception:
                # A broken listener must not cost the whole batch its generation.
                log.exception("on_partial failed for request %s", request.request_id)

        return report

    def _finalize(self, stop: StopPolicy, raw: str) -> str:
        text = stop.visible_text(raw)
        for token in self._special_tokens:
            text = text.replace(token, "")
        return stop.finalize(text)


def _end_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    eos = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos is not None:
        ids.update(int(token) for token in eos)
    for token_id in (tokenizer.eos_token_id, tokenizer.pad_token_id):
        if token_id is not None:
            ids.add(int(token_id))
    return frozenset(ids)


class _TokenLogprobs:
    """Record the model's own log-probability of each token it generates, per row.

    A forward hook sees each step's raw logits (before sampling warps them) and, at the
    next step, the token that was picked from them.
    """

    def __init__(self, rows: int) -> None:
        self._rows: list[list[float]] = [[] for _ in range(rows)]
        self._last: torch.Tensor | None = None

    def hook(self, _module: Any, _args: Any, kwargs: dict[str, Any], output: Any) -> None:
        logits = getattr(output, "logits", None)
        if logits is None or logits.shape[0] != len(self._rows):
            return
        chosen = kwargs.get("input_ids")
        if self._last is not None and chosen is not None:
            self._append(chosen[:, -1])
        self._last = torch.log_softmax(logits[:, -1, :].float(), dim=-1)

    def finish(self, last_tokens: torch.Tensor) -> list[list[float]]:
        if self._last is not None:
            self._append(last_tokens)
            self._last = None
        return self._rows

    def _append(self, tokens: torch.Tensor) -> None:
        assert self._last is not None
        picked = self._last.gather(1, tokens.to(self._last.device)[:, None]).squeeze(1)
        for row, value in enumerate(picked.tolist()):
            self._rows[row].append(value)
