"""Keep the key/value cache of recent prompts so a story's next prompt reads only what is new.

A story's narrator prompts share a long beginning from turn to turn (the rules, the genre,
the premise, often the lore and the summary, and the turns still in the window). Each
prompt read to the end is kept here, token ids and per-layer keys and values, in an LRU
bounded in bytes. A new prompt takes the longest beginning it shares with any kept one
(at least ``min_tokens``, and never the whole prompt: its last token is read again to give
the logits of the first new token), and is read from there on.

Positions are part of the keys (rotary embeddings), so only a shared *beginning* may be
reused, never a shared middle: the same tokens at the same positions give the same keys.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

Layers = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer, keys and values shaped [1, heads, tokens, head_dim]."""

DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024
DEFAULT_MIN_TOKENS = 16


@dataclass(frozen=True)
class PrefixStats:
    """How often prompts found a kept beginning, and how many tokens were not read again."""

    lookups: int
    hits: int
    reused_tokens: int
    read_tokens: int
    kept_prompts: int
    kept_bytes: int

    @property
    def hit_rate(self) -> float:
        """Return the share of prompts that reused a kept beginning."""
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def reused_share(self) -> float:
        """Return the share of prompt tokens taken from the cache instead of read."""
        total = self.reused_tokens + self.read_tokens
        return self.reused_tokens / total if total else 0.0


@dataclass
class _Kept:
    token_ids: tuple[int, ...]
    layers: Layers
    size: int


class PrefixCache:
    """An LRU of prompts' key/value caches, bounded in bytes; safe across threads."""

    def __init__(
        self, *, budget_bytes: int = DEFAULT_BUDGET_BYTES, min_tokens: int = DEFAULT_MIN_TOKENS
    ) -> None:
        if budget_bytes < 0 or min_tokens < 1:
            raise ValueError("budget_bytes must be >= 0 and min_tokens >= 1")
        self.budget_bytes = budget_bytes
        self.min_tokens = min_tokens
        self._kept: OrderedDict[tuple[int, ...], _Kept] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._lookups = self._hits = self._reused = self._read = 0

    def longest_prefix(self, token_ids: list[int]) -> tuple[int, Layers | None]:
        """Return how many leading tokens of TOKEN_IDS are kept, with their keys and values.

        The layers returned are copies cut to that length, the caller's to extend.
        """
        best: _Kept | None = None
        best_length = 0
        limit = len(token_ids) - 1  # the last token is always read, for its logits
        with self._lock:
            self._lookups += 1
            for kept in self._kept.values():
                length = _shared_length(kept.token_ids, token_ids, limit)
                if length > best_length:
                    best, best_length = kept, length
            if best is None or best_length < self.min_tokens:
                self._read += len(token_ids)
                return 0, None
            self._kept.move_to_end(best.token_ids)
            self._hits += 1
            self._reused += best_length
            self._read += len(token_ids) - best_length
            layers = [
                (keys[:, :, :best_length].clone(), values[:, :, :best_length].clone())
                for keys, values in best.layers
            ]
        return best_length, layers

    def keep(self, token_ids: list[int], layers: Layers) -> None:
        """Keep a prompt read to the end (copies of its layers), evicting the oldest."""
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        if size > self.budget_bytes or len(token_ids) < self.min_tokens:
            return
        key = tuple(token_ids)
        copies = [(keys.clone(), values.clone()) for keys, values in layers]
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._kept[key] = _Kept(key, copies, size)
            self._bytes += size
            while self._bytes > self.budget_bytes and self._kept:
                _, evicted = self._kept.popitem(last=False)
                self._bytes -= evicted.size

    def stats(self) -> PrefixStats:
        """Return the counts so far."""
        with self._lock:
            return PrefixStats(
                lookups=self._lookups,
                hits=self._hits,
                reused_tokens=self._reused,
                read_tokens=self._read,
                kept_prompts=len(self._kept),
                kept_bytes=self._bytes,
            )


def _shared_length(kept: tuple[int, ...], wanted: list[int], limit: int) -> int:
    length = min(len(kept), limit)
    for index in range(length):
        if kept[index] != wanted[index]:
            return index
    return length
