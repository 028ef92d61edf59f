"""Per-row logits rules: banned phrases and n-gram repeats within a continuation."""

from __future__ import annotations

import bisect
import logging
import re
import string
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from engine.safety.characters import is_spaceless_char, is_word_char

log = logging.getLogger(__name__)


def case_variants(phrase: str) -> list[str]:
    """Return ``phrase`` as given, lower case, capitalized, upper case and title case."""
    phrase = phrase.strip()
    if not phrase:
        return []
    lower = phrase.lower()
    cases = (
        phrase,
        lower,
        phrase[0].upper() + phrase[1:],
        lower[0].upper() + lower[1:],
        phrase.upper(),
        string.capwords(lower),
    )
    return list(dict.fromkeys(cases))


def phrase_variants(phrase: str) -> list[str]:
    """Return the spellings of ``phrase`` to ban: as given, lower, capitalized, upper case.

    Each spelling comes bare and after a space, since BPE vocabularies spell a word
    differently at the start of a text and after a space.
    """
    variants: list[str] = []
    for word in case_variants(phrase):
        for spelling in (word, f" {word}"):
            if spelling not in variants:
                variants.append(spelling)
    return variants


def banned_token_sequences(tokenizer: Any, phrases: Iterable[str]) -> list[list[int]]:
    """Return the token sequences (as ``bad_words_ids`` expects) that spell ``phrases``."""
    sequences: list[list[int]] = []
    for phrase in phrases:
        for spelling in phrase_variants(phrase):
            token_ids = list(tokenizer(spelling, add_special_tokens=False)["input_ids"])
            if token_ids and token_ids not in sequences:
                sequences.append(token_ids)
    return sequences


def _rows_per_request(rows: int, requests: int) -> int:
    # Beam search hands the processors batch * num_beams rows, beams of one request adjacent.
    return max(1, rows // max(1, requests))


class BannedSequencesProcessor(LogitsProcessor):
    """Forbid each request's banned token sequences in its own rows only.

    Works like transformers' ``bad_words_ids`` but per request, so requests with
    different banned phrases can still share one batch.
    """

    def __init__(self, per_request: Sequence[Sequence[Sequence[int]]]) -> None:
        self.per_request = [[list(sequence) for sequence in seqs] for seqs in per_request]

    @property
    def is_empty(self) -> bool:
        """Return whether no request bans anything."""
        return not any(self.per_request)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Set the final token of every banned sequence whose prefix was just written to -inf."""
        rows_per_request = _rows_per_request(int(input_ids.shape[0]), len(self.per_request))
        longest = max((len(s) for seqs in self.per_request for s in seqs), default=1)
        tails = input_ids[:, max(0, input_ids.shape[1] - (longest - 1)) :].tolist()
        mask = torch.zeros_like(scores, dtype=torch.bool)
        for row, tail in enumerate(tails):
            request = min(row // rows_per_request, len(self.per_request) - 1)
            for sequence in self.per_request[request]:
                prefix = sequence[:-1]
                if not prefix or tail[len(tail) - len(prefix) :] == prefix:
                    mask[row, sequence[-1]] = True
        return scores.masked_fill(mask, -float("inf"))  # type: ignore[return-value]


def _gpt2_byte_decoder() -> dict[str, int]:
    # GPT-2's byte-level BPE writes each byte as a printable character; this inverts it.
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\u00a1"), ord("\u00ac") + 1),
        *range(ord("\u00ae"), ord("\u00ff") + 1),
    ]
    shown = {byte: byte for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in shown:
            shown[byte] = 256 + extra
            extra += 1
    return {chr(char): byte for byte, char in shown.items()}


_BYTE_DECODER = _gpt2_byte_decoder()
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _is_byte_level(tokenizer: Any) -> bool:
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    return type(decoder).__name__ == "ByteLevel"


# Bytes that do not form a whole character decode to U+FFFD, which is not a letter:
# an unfinished character next to a phrase leaves it a whole word, as a reader sees it.
def _starts_word(data: bytes) -> bool:
    text = data[:4].decode("utf-8", errors="replace")
    return bool(text) and is_word_char(text[0])


def _ends_word(data: bytes) -> bool:
    text = data[-4:].decode("utf-8", errors="replace")
    return bool(text) and is_word_char(text[-1])


class TokenVocabulary:
    """The bytes each token of a vocabulary writes, indexed for prefix look-ups.

    Working on bytes rather than on decoded tokens lets a phrase be recognised however
    the model splits it into tokens, including tokens that hold only part of a
    multi-byte character. Look-ups ignore the case of ASCII letters.
    """

    def __init__(self, token_bytes: Sequence[bytes], special_ids: Iterable[int] = ()) -> None:
        specials = frozenset(special_ids)
        # Special tokens (end of text, chat turns) separate words like a line break.
        self._bytes = [b"\n" if i in specials else data for i, data in enumerate(token_bytes)]
        index = sorted(
            (data.lower(), token_id)
            for token_id, data in enumerate(token_bytes)
            if data and token_id not in specials
        )
        self._sorted = [data for data, _ in index]
        self._ids = [token_id for _, token_id in index]
        self._completions: dict[tuple[bytes, bool], tuple[int, ...]] = {}

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TokenVocabulary:
        """Read every token's bytes from a Hugging Face tokenizer."""
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        specials = set(tokenizer.all_special_ids)
        for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
            if getattr(added, "special", False):
                specials.add(token_id)
        byte_level = _is_byte_level(tokenizer)
        token_bytes = []
        for piece in pieces:
            if piece is None:
                token_bytes.append(b"")
            elif byte_level and all(char in _BYTE_DECODER for char in piece):
                token_bytes.append(bytes(_BYTE_DECODER[char] for char in piece))
            elif (fallback := _BYTE_FALLBACK.fullmatch(piece)) is not None:
                token_bytes.append(bytes([int(fallback.group(1), 16)]))
            else:
                token_bytes.append(piece.replace("\u2581", " ").encode("utf-8"))
        return cls(token_bytes, specials)

    def __len__(self) -> int:
        return len(self._bytes)

    def bytes_of(self, token_ids: Iterable[int]) -> bytes:
        """Return the bytes that ``token_ids`` write, in order."""
        size = len(self._bytes)
        return b"".join(self._bytes[i] for i in token_ids if 0 <= i < size)

    def completions(self, rest: bytes, *, whole_word: bool) -> tuple[int, ...]:
        """Return the tokens that start with ``rest``, in any case of its ASCII letters.

        With ``whole_word``, tokens that go on with a letter or digit right after
        ``rest`` are left out: they write a longer word, not the phrase.
        """
        rest = rest.lower()
        key = (rest, whole_word)
        found = self._completions.get(key)
        if found is None:
            ids = []
            for position in range(bisect.bisect_left(self._sorted, rest), len(self._sorted)):
                data = self._sorted[position]
                if not data.startswith(rest):
                    break
                if not (whole_word and _starts_word(data[len(rest) :])):
                    ids.append(self._ids[position])
            found = self._completions[key] = tuple(ids)
        return found


class BannedPhrases:
    """One request's banned phrases, compiled into "after this text, not these tokens".

    A phrase is banned as a whole word in any case (ASCII letters in any mix of
    case, other scripts lower, capitalised, upper and title case), however the model
    splits it into tokens, at the very start of the continuation as well as after a
    space. A phrase ending in ``*`` is a prefix ("gobl*" also bans "goblins"); phrases
    in scripts written without spaces (Chinese, Japanese, Thai...) are banned anywhere.
    A token that ends exactly where the phrase ends is banned too, since the model
    cannot yet tell whether the word goes on; so banning "gob" also stops "goblin"
    when the model would write it as "gob" + "lin", but not as " goblin" in one token.
    """

    def __init__(self, vocabulary: TokenVocabulary, phrases: Iterable[str]) -> None:
        self.vocabulary = vocabulary
        # lower-cased tail of the written text -> (tokens banned after it, tokens banned
        # only when that tail itself starts a word)
        self._after: dict[bytes, tuple[set[int], set[int]]] = {}
        for phrase in phrases:
            self._add(phrase)
        self.longest_tail = max((len(tail) for tail in self._after), default=0)
        # Enough tokens to hold the longest tail and the character before it.
        self.window_tokens = self.longest_tail + 4

    @property
    def is_empty(self) -> bool:
        """Return whether nothing is banned."""
        return not self._after

    def _add(self, phrase: str) -> None:
        phrase = phrase.strip()
        prefix = phrase.endswith("*")
        phrase = phrase.rstrip("*").strip()
        if not phrase:
            return
        spaceless = any(is_spaceless_char(char) for char in phrase)
        whole_word = not (prefix or spaceless)
        spellings = {spelling.encode("utf-8").lower() for spelling in case_variants(phrase)}
        for spelling in spellings:
            forms = [(spelling, not spaceless)]
            if not spaceless:
                forms.append((b" " + spelling, False))
            for form, needs_boundary in forms:
                for cut in range(len(form)):
                    ids = self.vocabulary.completions(form[cut:], whole_word=whole_word)
                    if ids:
                        always, after_boundary = self._after.setdefault(form[:cut], (set(), set()))
                        (after_boundary if needs_boundary else always).update(ids)

    def forbidden_after(self, text: bytes) -> set[int]:
        """Return the tokens that would complete a banned phrase at the end of ``text``."""
        text = text.lower()
        forbidden: set[int] = set()
        for cut in range(min(len(text), self.longest_tail) + 1):
            entry = self._after.get(text[len(text) - cut :])
            if entry is None:
                continue
            always, after_boundary = entry
            forbidden |= always
            if after_boundary and not _ends_word(text[: len(text) - cut]):
                forbidden |= after_boundary
        return forbidden


class BannedPhrasesProcessor(LogitsProcessor):
    """Forbid each request's banned phrases in its own rows only, in any token split."""

    def __init__(self, per_request: Sequence[BannedPhrases | None]) -> None:
        self.per_request = list(per_request)

    @property
    def is_empty(self) -> bool:
        """Return whether no request bans anything."""
        return all(banned is None or banned.is_empty for banned in self.per_request)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Set every token that would complete a banned phrase to -inf."""
        if self.is_empty:
            return scores
        rows_per_request = _rows_per_request(int(input_ids.shape[0]), len(self.per_request))
        vocab_size = int(scores.shape[-1])
        window = max(b.window_tokens for b in self.per_request if b is not None)
        # One copy to the CPU for the whole batch, not one per row.
        tails = input_ids[:, -window:].tolist()
        mask: torch.Tensor | None = None
        for row, tail_ids in enumerate(tails):
            banned = self.per_request[min(row // rows_per_request, len(self.per_request) - 1)]
            if banned is None or banned.is_empty:
                continue
            tail = banned.vocabulary.bytes_of(tail_ids[-banned.window_tokens :])
            forbidden = [i for i in banned.forbidden_after(tail) if i < vocab_size]
            if forbidden:
                if mask is None:
                    mask = torch.zeros(scores.shape, dtype=torch.bool)
                mask[row, forbidden] = True
        if mask is None:
            return scores
        return scores.masked_fill(mask.to(scores.device), -float("inf"))  # type: ignore[return-value]


class ContinuationNoRepeatNGram(LogitsProcessor):
    """Forbid repeating an n-gram within the generated continuation.

    transformers' ``no_repeat_ngram_size`` also counts the prompt, which would stop
    the narrator from ever writing a character's full name or a phrase from the
    story so far again; this looks only at the tokens generated after the prompt.
    """

    def __init__(self, ngram_size: int, prompt_length: int) -> None:
        if ngram_size < 1:
            raise ValueError("ngram_size must be at least 1")
        self.ngram_size = ngram_size
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Set tokens that would complete an already generated n-gram to -inf."""
        n = self.ngram_size
        generated = input_ids[:, self.prompt_length :]
        if generated.shape[1] < n - 1 or generated.shape[1] == 0:
            return scores
        mask = torch.zeros_like(scores, dtype=torch.bool)
        for row, tokens in enumerate(generated.tolist()):
            context = tokens[len(tokens) - (n - 1) :] if n > 1 else []
            for start in range(len(tokens) - n + 1):
                if tokens[start : start + n - 1] == context:
                    mask[row, tokens[start + n - 1]] = True
        return scores.masked_fill(mask, -float("inf"))  # type: ignore[return-value]
