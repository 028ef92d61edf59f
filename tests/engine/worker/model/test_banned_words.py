from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from engine.protocol.sampling import SamplingSettings
from engine.worker.model.generator import BatchGenerator, GenerationRequest, GenerationResult
from engine.worker.model.loading import LoadedModel
from engine.worker.model.logits_processors import BannedPhrases, TokenVocabulary
from engine.worker.model.stopping import StopPolicy

# "goblin" is not in the tiny tokenizer's corpus, so it takes several tokens
# (" goblin" is Ġ g o b l in) and can be split in other ways as well.
WORD = "goblin"
OPEN_ENDED = StopPolicy(max_paragraphs=5, markers=(), stop_at_any_speaker=False)
GREEDY = SamplingSettings(
    temperature=0, max_new_tokens=24, repetition_penalty=1.0, no_repeat_ngram_size=0
)
SAMPLED = SamplingSettings(
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    max_new_tokens=24,
    repetition_penalty=1.0,
    no_repeat_ngram_size=0,
)
PROMPTS = ["The village", "Mira opened the door and", "The dragon slept;", "Tom asked:\n"]
SEEDS = range(4)  # x 8 rows a batch: 32 samples per case


def contains_word(text: str, word: str = WORD) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


class SpellTowards(LogitsProcessor):
    """Push the model to write ``spelling`` again and again, in any token split.

    Every token whose text continues the spelling from where the text so far leaves
    off gets a large bonus, so all splits of the word are likely, not just the one
    the tokenizer would choose; with ``single_characters`` only one-character tokens
    are pushed, which spells the word in a split the tokenizer never produces.
    """

    def __init__(self, tokenizer: Any, spelling: str, *, single_characters: bool = False) -> None:
        self.tokenizer = tokenizer
        self.spelling = spelling
        special = set(tokenizer.all_special_ids)
        self.pieces = {
            token_id: text
            for token_id in range(len(tokenizer))
            if token_id not in special
            and (text := tokenizer.decode([token_id]))
            and (len(text) == 1 or not single_characters)
        }

    def _remaining(self, written: str) -> str:
        for size in range(len(self.spelling) - 1, 0, -1):
            if written.endswith(self.spelling[:size]):
                return self.spelling[size:]
        return self.spelling

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        pushed = scores.clone()
        for row, token_ids in enumerate(input_ids.tolist()):
            remaining = self._remaining(self.tokenizer.decode(token_ids[-16:]))
            for token_id, text in self.pieces.items():
                if remaining.startswith(text):
                    pushed[row, token_id] += 50.0
        return pushed  # type: ignore[return-value]


@pytest.fixture(scope="module")
def generator(tiny_model: LoadedModel) -> BatchGenerator:
    return BatchGenerator(tiny_model)


@pytest.fixture
def spell(
    generator: BatchGenerator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., None]]:
    """Make the model favour a spelling: SpellTowards runs before the generator's rules."""
    model = generator.loaded.model
    original = model.generate

    def install(spelling: str, *, single_characters: bool = False) -> None:
        speller = SpellTowards(
            generator.loaded.tokenizer, spelling, single_characters=single_characters
        )

        def generate(*args: Any, logits_processor: LogitsProcessorList, **kwargs: Any) -> Any:
            processors = LogitsProcessorList([speller, *logits_processor])
            return original(*args, logits_processor=processors, **kwargs)

        monkeypatch.setattr(model, "generate", generate)

    yield install


def generate(
    generator: BatchGenerator,
    banned: tuple[str, ...],
    sampling: SamplingSettings,
    prompts: list[str] = PROMPTS,
) -> list[GenerationResult]:
    """Generate every prompt once greedily, or in a batch of 8 rows per seed when sampling."""
    if sampling.temperature != 0:
        prompts = [prompts[i % len(prompts)] for i in range(8)]
    requests = [
        GenerationRequest(f"r{i}", prompt, sampling, OPEN_ENDED, banned)
        for i, prompt in enumerate(prompts)
    ]
    if sampling.temperature == 0:
        return generator.generate_batch(requests)
    return [r for seed in SEEDS for r in generator.generate_batch(requests, seed=seed)]


SPELLINGS = [
    pytest.param(" goblin", PROMPTS, id="after-a-space"),
    pytest.param(" Goblin", PROMPTS, id="capitalised"),
    pytest.param(" GOBLIN", PROMPTS, id="all-caps"),
    pytest.param("Goblin ", ["Tom asked:\n", "A quiet village waited.\n"], id="at-the-start"),
]
MODES = [pytest.param(GREEDY, id="greedy"), pytest.param(SAMPLED, id="sampled")]


@pytest.mark.parametrize("sampling", MODES)
@pytest.mark.parametrize(("spelling", "prompts"), SPELLINGS)
def test_without_a_ban_the_pushed_model_writes_the_word_every_time(
    generator: BatchGenerator,
    spell: Callable[..., None],
    spelling: str,
    prompts: list[str],
    sampling: SamplingSettings,
) -> None:
    spell(spelling)

    results = generate(generator, (), sampling, prompts)

    assert all(contains_word(r.raw_text) for r in results), [r.raw_text for r in results]


@pytest.mark.parametrize("sampling", MODES)
@pytest.mark.parametrize(("spelling", "prompts"), SPELLINGS)
def test_banned_word_never_appears_whatever_its_case_or_position(
    generator: BatchGenerator,
    spell: Callable[..., None],
    spelling: str,
    prompts: list[str],
    sampling: SamplingSettings,
) -> None:
    spell(spelling)

    results = generate(generator, (WORD,), sampling, prompts)

    for result in results:
        assert not contains_word(result.raw_text), result.raw_text
        assert result.new_tokens > 0


@pytest.mark.parametrize("entry", ["Goblin", " GOBLIN ", "gObLiN"])
def test_the_case_of_the_banned_entry_does_not_matter(
    generator: BatchGenerator, spell: Callable[..., None], entry: str
) -> None:
    spell(" goblin")

    results = generate(generator, (entry,), SAMPLED)

    assert not any(contains_word(r.raw_text) for r in results)


@pytest.mark.parametrize("sampling", MODES)
def test_ban_holds_when_the_word_is_spelt_one_character_per_token(
    generator: BatchGenerator, spell: Callable[..., None], sampling: SamplingSettings
) -> None:
    spell(" goblin", single_characters=True)
    assert all(contains_word(r.raw_text) for r in generate(generator, (), sampling))

    results = generate(generator, (WORD,), sampling)

    assert not any(contains_word(r.raw_text) for r in results)


@pytest.fixture
def favour_dragon(tiny_model: LoadedModel) -> Iterator[None]:
    """Bias the lm_head towards " dragon", a single token of the tiny vocabulary."""
    (token_id,) = tiny_model.tokenizer(" dragon", add_special_tokens=False)["input_ids"]

    def add_bias(_module: Any, _inputs: Any, logits: torch.Tensor) -> torch.Tensor:
        biased = logits.clone()
        biased[..., token_id] += 30.0
        return biased

    handle = tiny_model.model.lm_head.register_forward_hook(add_bias)
    try:
        yield
    finally:
        handle.remove()


@pytest.mark.usefixtures("favour_dragon")
def test_ban_is_whole_word_so_a_longer_word_is_still_written(generator: BatchGenerator) -> None:
    assert not any(
        contains_word(r.raw_text, "dragon") for r in generate(generator, ("dragon",), GREEDY)
    )

    results = generate(generator, ("drag",), GREEDY)

    assert all(contains_word(r.raw_text, "dragon") for r in results)


def test_trailing_star_bans_every_word_that_starts_with_it(
    generator: BatchGenerator, spell: Callable[..., None]
) -> None:
    spell(" goblin")

    results = generate(generator, ("gob*",), SAMPLED)

    assert not any(re.search(r"\bgob", r.raw_text, re.IGNORECASE) for r in results)


def test_banned_phrase_of_two_words_never_appears(
    generator: BatchGenerator, spell: Callable[..., None]
) -> None:
    spell(" red goblin")
    assert all(contains_word(r.raw_text, "red goblin") for r in generate(generator, (), SAMPLED))

    results = generate(generator, ("Red Goblin",), SAMPLED)

    assert not any(contains_word(r.raw_text, "red goblin") for r in results)


# The rules below are checked on a small hand-made vocabulary, byte by byte.
PIECES = [b" dr", b"agon", b"ag", b"on", b"ons", b"onfly", b"n", b" ", b"d", b"ragon", b"Dragon"]
PIECES += ["дура".encode(), "к".encode(), "ки".encode(), "竜".encode()[:2], "竜".encode()[2:]]


def names(vocabulary: TokenVocabulary, ids: set[int]) -> set[bytes]:
    return {vocabulary.bytes_of([i]) for i in ids}


@pytest.mark.parametrize(
    ("phrase", "written", "forbidden"),
    [
        pytest.param("dragon", b"The dr", {b"agon"}, id="finishing-token-after-a-split"),
        pytest.param("dragon", b"The drag", {b"on"}, id="longer-words-stay-allowed"),
        pytest.param("dragon*", b"The drag", {b"on", b"ons", b"onfly"}, id="prefix-bans-all"),
        pytest.param("dragon", b"hydr", set(), id="not-inside-another-word"),
        pytest.param("dragon", b"", {b"Dragon"}, id="very-start-of-text"),
        pytest.param("dragon", b"Said:\n", {b"Dragon"}, id="after-a-line-break"),
        pytest.param("dragon", b"The", {b" dr"} - {b" dr"}, id="a-prefix-alone-is-fine"),
        pytest.param("дурак", " дура".encode(), {"к".encode()}, id="cyrillic-whole-word"),
        pytest.param("竜", b"x", {"竜".encode()[:2]} - {"竜".encode()[:2]}, id="cjk-first-bytes"),
        pytest.param("竜", b"x" + "竜".encode()[:2], {"竜".encode()[2:]}, id="cjk-last-byte"),
    ],
)
def test_banned_phrases_forbid_exactly_the_tokens_that_complete_them(
    phrase: str, written: bytes, forbidden: set[bytes]
) -> None:
    vocabulary = TokenVocabulary(PIECES)
    banned = BannedPhrases(vocabulary, [phrase])

    assert names(vocabulary, banned.forbidden_after(written)) == forbidden


def test_vocabulary_reads_byte_level_tokens_as_the_tokenizer_decodes_them(
    tiny_model: LoadedModel,
) -> None:
    tokenizer = tiny_model.tokenizer
    vocabulary = TokenVocabulary.from_tokenizer(tokenizer)
    text = "Mira opened the creaking door, and a goblin — 竜 — laughed."
    token_ids = tokenizer(text, add_special_tokens=False)["input_ids"]

    assert vocabulary.bytes_of(token_ids).decode("utf-8") == text
    assert vocabulary.bytes_of([tokenizer.eos_token_id]) == b"\n"
