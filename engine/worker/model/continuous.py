"""Continuous (iteration-level) batching: requests join and leave a running decode loop.

``BatchGenerator`` runs one ``generate()`` call per batch: a request that arrives while a
batch runs waits for the whole batch, and a row that finished early keeps its place
until the longest row ends. Here one thread owns a single batched key/value cache and
decodes one token for every active row per step:

- a new request is read ("prefilled") in chunks of ``prefill_chunk`` tokens between
  decode steps, so rows already streaming keep streaming; when its prompt is read, its
  candidates sample their first token from the prompt's last logits and join the batch;
- a row leaves the batch the step it ends (end token, a stop rule, its token budget),
  freeing its place at once;
- every row keeps its own sampling settings, banned phrases, n-gram memory and random
  generator (seeded per request, so a request samples the same text whatever else runs
  beside it, up to floating-point noise);
- admission is bounded by ``max_rows`` and by a key/value budget in tokens (each row
  counts its prompt plus its token budget); callers ask ``room()`` before submitting, so
  jobs beyond it stay in the queue where other workers can take them;
- a prompt that begins like one read before (a story's previous turn) starts from that
  prompt's kept key/value cache (``PrefixCache``) and reads only the rest.

Beam search does not fit a row-by-row loop; such requests run through the batch
generator, one call each, in this thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from engine.protocol.sampling import SamplingSettings
from engine.telemetry.metrics import PREFIX_CACHE_LOOKUPS, PROMPT_TOKENS
from engine.worker.model.generator import (
    REPLACEMENT_CHAR,
    BatchGenerator,
    Candidate,
    GenerationRequest,
    GenerationResult,
    PartialCallback,
)
from engine.worker.model.logits_processors import BannedPhrasesProcessor, ContinuationNoRepeatNGram
from engine.worker.model.prefix_cache import PrefixCache
from engine.worker.model.stopping_criteria import decode_generated

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 32
DEFAULT_KV_BUDGET_TOKENS = 24_576
DEFAULT_PREFILL_CHUNK = 128

Done = Callable[[GenerationResult], None]


@dataclass
class _Request:
    """One submitted request: its rows, its random generator and who to tell."""

    request: GenerationRequest
    prompt_ids: list[int]
    generator: torch.Generator
    on_partial: PartialCallback | None
    on_done: Done
    started: float
    cache: DynamicCache | None = None
    prefilled: int = 0
    rows_left: int = 0
    candidates: dict[int, Candidate] = field(default_factory=dict)
    finish: str = "length"
    last_partial: str = ""

    @property
    def kv_tokens(self) -> int:
        """Return the key/value tokens this request may hold at most."""
        per_row = len(self.prompt_ids) + self.request.sampling.max_new_tokens
        return per_row * self.request.candidates


@dataclass
class _Row:
    """One candidate sequence being decoded."""

    owner: _Request
    candidate: int
    tokens: list[int]
    prompt_length: int
    logprobs: list[float] = field(default_factory=list)
    ended_by_end_token: bool = False

    @property
    def generated(self) -> list[int]:
        return self.tokens[self.prompt_length :]


class ContinuousGenerator:
    """Decode many requests at once in one thread; requests join and leave at any step."""

    def __init__(
        self,
        batch: BatchGenerator,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        kv_budget_tokens: int = DEFAULT_KV_BUDGET_TOKENS,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        if max_rows < 1 or kv_budget_tokens < 1 or prefill_chunk < 1:
            raise ValueError("max_rows, kv_budget_tokens and prefill_chunk must be positive")
        self.batch = batch
        self.loaded = batch.loaded
        self.max_rows = max_rows
        self.kv_budget_tokens = kv_budget_tokens
        self.prefill_chunk = prefill_chunk
        self.prefix_cache = prefix_cache if prefix_cache is not None else PrefixCache()
        self.prefill_seconds = 0.0
        self.prefill_tokens = 0
        self._inbox: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._waiting: list[_Request] = []
        self._rows: list[_Row] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # [rows, cache length]: 1 = real token
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._admitted_rows = 0
        self._admitted_kv = 0
        # Requests submitted and not finished, and those of them asked to stop.
        self._active: set[str] = set()
        self._cancel: set[str] = set()
        self.steps = 0

    # Callers' side (any thread) ---------------------------------------------------------

    def room(self) -> int:
        """Return how many more single-row requests may be submitted now (0 = full)."""
        with self._lock:
            rows = self.max_rows - self._admitted_rows
            return max(0, rows) if self._admitted_kv < self.kv_budget_tokens else 0

    def fits(self, request: GenerationRequest, prompt_tokens: int) -> bool:
        """Tell whether REQUEST can ever run here (alone, within the budgets)."""
        rows = request.candidates
        kv = (prompt_tokens + request.sampling.max_new_tokens) * rows
        return rows <= self.max_rows and kv <= self.kv_budget_tokens

    def submit(
        self,
        request: GenerationRequest,
        *,
        on_done: Done,
        on_partial: PartialCallback | None = None,
        seed: int | None = None,
    ) -> None:
        """Queue REQUEST; ON_DONE gets its result on the decode thread when it ends."""
        generator = torch.Generator(device="cpu")
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        prompt_ids = self._encode(request)
        entry = _Request(request, prompt_ids, generator, on_partial, on_done, time.perf_counter())
        with self._lock:
            self._admitted_rows += request.candidates
            self._admitted_kv += entry.kv_tokens
            self._active.add(request.request_id)
        self._inbox.put(entry)
        self._wake.set()
        self._ensure_thread()

    def generate_batch(
        self,
        requests: list[GenerationRequest],
        on_partial: PartialCallback | None = None,
        *,
        seed: int | None = None,
    ) -> list[GenerationResult]:
        """Run REQUESTS to the end and return their results in order (blocking)."""
        results: dict[str, GenerationResult] = {}
        finished = threading.Event()

        def done(result: GenerationResult) -> None:
            results[result.request_id] = result
            if len(results) == len(requests):
                finished.set()

        for index, request in enumerate(requests):
            self.submit(
                request,
                on_done=done,
                on_partial=on_partial,
                seed=None if seed is None else seed + 7907 * index,
            )
        if requests:
            finished.wait()
        return [results[request.request_id] for request in requests]

    def cancel(self, request_id: str) -> bool:
        """Stop a request, waiting or running, at the next step; False when it is not here.

        Its ON_DONE gets a result whose finish reason is "cancelled".
        """
        with self._lock:
            if request_id not in self._active:
                return False
            self._cancel.add(request_id)
        self._wake.set()
        return True

    def stop(self) -> None:
        """Stop the decode thread after the step in progress; running requests are dropped."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
        self._rows, self._waiting, self._cache, self._mask = [], [], None, None
        with self._lock:
            self._admitted_rows = 0
            self._admitted_kv = 0
            self._active.clear()
            self._cancel.clear()

    # The decode thread ------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="continuous-decoder", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._take_inbox()
            self._drop_cancelled()
            if not self._rows and not self._waiting:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            try:
                with torch.inference_mode():
                    if self._waiting:
                        self._prefill_step(self._waiting[0])
                    if self._rows:
                        self._decode_step()
            except Exception as error:  # a broken step must not kill the worker's thread
                log.exception("decode step failed; failing the requests in it")
                self._fail_everything(error)

    def _take_inbox(self) -> None:
        while True:
            try:
                entry = self._inbox.get_nowait()
            except queue.Empty:
                return
            if entry.request.sampling.num_beams > 1:
                self._run_beams(entry)
            else:
                self._waiting.append(entry)

    def _run_beams(self, entry: _Request) -> None:
        try:
            [result] = self.batch.generate_batch([entry.request], entry.on_partial)
        except Exception:
            log.exception("beam search failed for request %s", entry.request.request_id)
            result = _failed(entry)
        self._finish(entry, result)

    def _prefill_step(self, entry: _Request) -> None:
        """Read the next chunk of the first waiting prompt; join the batch when it is read."""
        model = self.loaded.model
        if entry.cache is None:
            entry.cache = DynamicCache()
            reused, layers = self.prefix_cache.longest_prefix(entry.prompt_ids)
            for index, (keys, values) in enumerate(layers or ()):
                entry.cache.update(keys, values, index)
            entry.prefilled = reused
            PREFIX_CACHE_LOOKUPS.labels("hit" if reused else "miss").inc()
            PROMPT_TOKENS.labels("reused").inc(reused)
            PROMPT_TOKENS.labels("read").inc(len(entry.prompt_ids) - reused)
        started = time.perf_counter()
        start = entry.prefilled
        end = min(len(entry.prompt_ids), start + self.prefill_chunk)
        ids = torch.tensor([entry.prompt_ids[start:end]], device=model.device)
        positions = torch.arange(start, end, device=model.device)[None]
        output = model(
            input_ids=ids,
            position_ids=positions,
            cache=entry.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        entry.prefilled = end
        self.prefill_seconds += time.perf_counter() - started
        self.prefill_tokens += end - start
        if end < len(entry.prompt_ids):
            return
        self._waiting.pop(0)
        rows = entry.request.candidates
        entry.rows_left = rows
        logits = output.logits[:, -1, :].float().expand(rows, -1)
        new_rows = [
            _Row(entry, candidate, list(entry.prompt_ids), len(entry.prompt_ids))
            for candidate in range(rows)
        ]
        cache = entry.cache
        entry.cache = None
        self.prefix_cache.keep(
            entry.prompt_ids, [(layer.keys, layer.values) for layer in _layers(cache)]
        )
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        self._join(new_rows, cache, len(entry.prompt_ids))
        self._sample(new_rows, logits, list(range(len(self._rows) - rows, len(self._rows))))

    def _join(self, rows: list[_Row], cache: DynamicCache, length: int) -> None:
        """Append ROWS (whose cache holds LENGTH real tokens) to the batch, left-padding."""
        device = self.loaded.model.device
        new_mask = torch.ones(len(rows), length, dtype=torch.long, device=device)
        if self._cache is None or not self._rows:
            self._cache, self._mask, self._rows = cache, new_mask, list(rows)
            return
        assert self._mask is not None
        current = int(self._mask.shape[1])
        width = max(current, length)
        for mine, theirs in zip(_layers(self._cache), _layers(cache), strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)])
            mine.values = torch.cat(
                [_pad_left(mine.values, width), _pad_left(theirs.values, width)]
            )
        self._mask = torch.cat(
            [_pad_left_2d(self._mask, width), _pad_left_2d(new_mask, width)], dim=0
        )
        self._rows.extend(rows)

    def _decode_step(self) -> None:
        model = self.loaded.model
        assert self._cache is not None and self._mask is not None
        device = model.device
        last = torch.tensor([[row.tokens[-1]] for row in self._rows], device=device)
        positions = torch.tensor([[len(row.tokens) - 1] for row in self._rows], device=device)
        mask = torch.cat(
            [self._mask, torch.ones(len(self._rows), 1, dtype=torch.long, device=device)], dim=1
        )
        output = model(
            input_ids=last,
            attention_mask=mask,
            position_ids=positions,
            cache=self._cache,
            use_cache=True,
        )
        self._mask = mask
        self.steps += 1
        self._sample(self._rows, output.logits[:, -1, :].float(), list(range(len(self._rows))))

    def _sample(self, rows: list[_Row], logits: torch.Tensor, positions: list[int]) -> None:
        """Pick each row's next token, record it, and retire the rows that ended."""
        logprobs = torch.log_softmax(logits, dim=-1)
        groups: dict[SamplingSettings, list[int]] = {}
        for index, row in enumerate(rows):
            groups.setdefault(row.owner.request.sampling, []).append(index)
        chosen: list[int] = [0] * len(rows)
        for sampling, indices in groups.items():
            scores = torch.stack([self._processed(rows[i], logits[i]) for i in indices])
            picked = self._pick(sampling, scores, [rows[i] for i in indices])
            for index, token in zip(indices, picked, strict=True):
                chosen[index] = token
        ended: list[int] = []
        for index, (row, token) in enumerate(zip(rows, chosen, strict=True)):
            row.logprobs.append(float(logprobs[index, token]))
            if token in self.batch.end_token_ids:
                row.ended_by_end_token = True
                ended.append(positions[index])
                continue
            row.tokens.append(token)
            if self._row_ends(row):
                ended.append(positions[index])
        if ended:
            self._retire(ended)

    def _processed(self, row: _Row, scores: torch.Tensor) -> torch.Tensor:
        """Apply the row's own penalties and bans to its raw scores."""
        sampling = row.owner.request.sampling
        ids: Any = torch.tensor([row.tokens])
        batch: Any = scores[None]
        if sampling.repetition_penalty != 1.0:
            batch = RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty)(ids, batch)
        if sampling.no_repeat_ngram_size > 0:
            no_repeat = ContinuationNoRepeatNGram(sampling.no_repeat_ngram_size, row.prompt_length)
            batch = no_repeat(ids, batch)
        banned = self.batch.banned_phrases(row.owner.request.banned_phrases)
        if banned is not None and not banned.is_empty:
            batch = BannedPhrasesProcessor([banned])(ids, batch)
        return batch[0]

    @staticmethod
    def _pick(sampling: SamplingSettings, scores: torch.Tensor, rows: list[_Row]) -> list[int]:
        if sampling.temperature == 0.0:
            return [int(token) for token in scores.argmax(dim=-1)]
        candidates: torch.Tensor | None = None
        if 0 < sampling.top_k < scores.shape[-1]:
            # Top-k first, on k values instead of the whole vocabulary: top-p and the
            # softmax over what top-k keeps give the same distribution, much cheaper.
            scores, candidates = torch.topk(scores, sampling.top_k, dim=-1)
        warped = TemperatureLogitsWarper(sampling.temperature)(None, scores)
        if sampling.top_p < 1.0:
            warped = TopPLogitsWarper(sampling.top_p)(None, warped)
        probabilities = torch.softmax(warped, dim=-1)
        picked = [
            int(torch.multinomial(probabilities[i], 1, generator=row.owner.generator))
            for i, row in enumerate(rows)
        ]
        if candidates is None:
            return picked
        return [int(candidates[i, choice]) for i, choice in enumerate(picked)]

    def _row_ends(self, row: _Row) -> bool:
        """Report partial text and tell whether the row reached a stop point or its budget."""
        request = row.owner.request
        generated = row.generated
        raw = self._decode(generated)
        if request.stop.should_stop(raw):
            return True
        owner = row.owner
        if (
            row.candidate == 0
            and owner.on_partial is not None
            and len(generated) % self.batch.partial_every == 0
        ):
            text = request.stop.visible_text(raw.rstrip(REPLACEMENT_CHAR))
            if text and text != owner.last_partial:
                owner.last_partial = text
                try:
                    owner.on_partial(request.request_id, text)
                except Exception:
                    log.exception("on_partial failed for request %s", request.request_id)
        return len(generated) >= request.sampling.max_new_tokens

    def _drop_cancelled(self) -> None:
        """Take the requests asked to stop out of the waiting line and the batch."""
        with self._lock:
            if not self._cancel:
                return
            cancelled, self._cancel = self._cancel, set()
        for entry in [e for e in self._waiting if e.request.request_id in cancelled]:
            self._waiting.remove(entry)
            entry.cache = None
            self._finish(entry, _cancelled(entry))
        positions = [
            index
            for index, row in enumerate(self._rows)
            if row.owner.request.request_id in cancelled
        ]
        if positions:
            leaving = self._remove_rows(positions)
            owners = {id(row.owner): row.owner for row in leaving}
            for owner in owners.values():
                self._finish(owner, _cancelled(owner))

    def _retire(self, positions: list[int]) -> None:
        for row in self._remove_rows(positions):
            self._row_done(row)

    def _remove_rows(self, positions: list[int]) -> list[_Row]:
        """Take the rows at POSITIONS out of the batch and its cache; return them."""
        gone = set(positions)
        keep = [index for index in range(len(self._rows)) if index not in gone]
        leaving = [self._rows[index] for index in sorted(gone)]
        assert self._cache is not None and self._mask is not None
        if keep:
            keep_index = torch.tensor(keep, device=self._mask.device)
            self._cache.batch_select_indices(keep_index)
            self._mask = self._mask[keep_index]
            self._rows = [self._rows[index] for index in keep]
            self._trim_padding()
        else:
            self._cache, self._mask, self._rows = None, None, []
        return leaving

    def _trim_padding(self) -> None:
        """Drop cache columns that are padding in every remaining row."""
        assert self._cache is not None and self._mask is not None
        used = self._mask.any(dim=0).nonzero()
        first = int(used[0]) if used.numel() else 0
        if first > 0:
            for layer in _layers(self._cache):
                layer.keys = layer.keys[:, :, first:]
                layer.values = layer.values[:, :, first:]
            self._mask = self._mask[:, first:]

    def _row_done(self, row: _Row) -> None:
        owner = row.owner
        raw = self._decode(row.generated).rstrip(REPLACEMENT_CHAR)
        scores = row.logprobs[: len(row.generated)]
        owner.candidates[row.candidate] = Candidate(
            text=self.batch.finalize(owner.request.stop, raw),
            raw_text=raw,
            new_tokens=len(row.generated),
            mean_logprob=sum(scores) / len(scores) if scores else float("-inf"),
        )
        if row.candidate == 0 and (row.ended_by_end_token or owner.request.stop.should_stop(raw)):
            owner.finish = "stop"
        owner.rows_left -= 1
        if owner.rows_left == 0:
            candidates = tuple(owner.candidates[i] for i in range(owner.request.candidates))
            first = candidates[0]
            result = GenerationResult(
                request_id=owner.request.request_id,
                text=first.text,
                raw_text=first.raw_text,
                new_tokens=sum(c.new_tokens for c in candidates),
                finish_reason="stop" if owner.finish == "stop" else "length",
                seconds=time.perf_counter() - owner.started,
                candidates=candidates,
            )
            self._finish(owner, result)

    def _finish(self, entry: _Request, result: GenerationResult) -> None:
        with self._lock:
            self._admitted_rows -= entry.request.candidates
            self._admitted_kv -= entry.kv_tokens
            self._active.discard(entry.request.request_id)
            self._cancel.discard(entry.request.request_id)
        try:
            entry.on_done(result)
        except Exception:
            log.exception("on_done failed for request %s", entry.request.request_id)

    def _fail_everything(self, error: Exception) -> None:
        owners = {id(row.owner): row.owner for row in self._rows}
        for entry in self._waiting:
            owners[id(entry)] = entry
        self._rows, self._waiting, self._cache, self._mask = [], [], None, None
        for entry in owners.values():
            self._finish(entry, _failed(entry))

    def _decode(self, token_ids: list[int]) -> str:
        return decode_generated(self.loaded.tokenizer, token_ids, self.batch.end_token_ids)

    def _encode(self, request: GenerationRequest) -> list[int]:
        return self.batch.encode_prompt(request.prompt, request.sampling.max_new_tokens)


def _layers(cache: DynamicCache) -> list[Any]:
    """Return a cache's layers, whose ``keys`` and ``values`` are [rows, heads, length, dim]."""
    return list(cache.layers)


def _failed(entry: _Request) -> GenerationResult:
    seconds = time.perf_counter() - entry.started
    return GenerationResult(entry.request.request_id, "", "", 0, "error", seconds)


def _cancelled(entry: _Request) -> GenerationResult:
    seconds = time.perf_counter() - entry.started
    return GenerationResult(entry.request.request_id, "", "", 0, "cancelled", seconds)


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Left-pad a [rows, heads, length, dim] cache tensor with zeros to WIDTH."""
    missing = width - int(tensor.shape[2])
    if missing <= 0:
        return tensor
    pad = torch.zeros(
        (tensor.shape[0], tensor.shape[1], missing, tensor.shape[3]),
        dtype=tensor.dtype,
        device=tensor.device,
    )
    return torch.cat([pad, tensor], dim=2)


def _pad_left_2d(mask: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - int(mask.shape[1])
    if missing <= 0:
        return mask
    pad = torch.zeros((mask.shape[0], missing), dtype=mask.dtype, device=mask.device)
    return torch.cat([pad, mask], dim=1)
