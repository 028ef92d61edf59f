"""Measure the content filters: clean published prose refused, hostile text caught, per rating.

The clean side is ``data/literary_passages.txt`` (sentences of Jane Austen's novels,
checked one by one as players' turns and, joined into their paragraphs, as narrator
passages); the hostile side is ``data/hostile.jsonl``, each text with the ratings at
which it must be refused. See ``data/SOURCES.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources

from engine.safety import ContentPolicy, ProfanityClassifier, TextKind, normalize
from engine.safety.classifier import shared_classifier
from storage.models import ContentRating

LITERARY_PASSAGES = "literary_passages.txt"
HOSTILE_TEXTS = "hostile.jsonl"
# Refused clean texts shown per rating in the printed report (all of them in --json).
SHOWN_EXAMPLES = 5


@dataclass(frozen=True)
class HostileText:
    """A text the filters must refuse at the ratings in ``refuse_at``."""

    text: str
    category: str
    refuse_at: frozenset[ContentRating]


@dataclass(frozen=True)
class Refusal:
    """One text a filter refused (or, for hostile text, let through)."""

    text: str
    rule: str | None


@dataclass
class RatingFigures:
    """What the filters of one rating did with the clean and hostile sets."""

    rating: str
    sentences: int = 0
    sentences_refused: list[Refusal] = field(default_factory=list)
    passages: int = 0
    passages_refused: list[Refusal] = field(default_factory=list)
    hostile: int = 0
    hostile_missed: list[Refusal] = field(default_factory=list)
    caught_by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def sentences_refused_percent(self) -> float:
        """Return the share of clean sentences refused, in percent."""
        return _percent(len(self.sentences_refused), self.sentences)

    @property
    def passages_refused_percent(self) -> float:
        """Return the share of clean passages refused, in percent."""
        return _percent(len(self.passages_refused), self.passages)

    @property
    def hostile_caught(self) -> int:
        """Return how many hostile texts due at this rating were refused."""
        return self.hostile - len(self.hostile_missed)

    @property
    def hostile_caught_percent(self) -> float:
        """Return the share of hostile texts due at this rating that were refused, in percent."""
        return _percent(self.hostile_caught, self.hostile)

    def as_dict(self) -> dict[str, object]:
        """Return the figures and every refused or missed text, for JSON."""
        data = asdict(self)
        data.update(
            sentences_refused_percent=round(self.sentences_refused_percent, 3),
            passages_refused_percent=round(self.passages_refused_percent, 3),
            hostile_caught=self.hostile_caught,
            hostile_caught_percent=round(self.hostile_caught_percent, 3),
        )
        return data


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _data_text(name: str) -> str:
    return resources.files("engine.ops").joinpath("data", name).read_text(encoding="utf-8")


def literary_passages() -> list[list[str]]:
    """Return the clean corpus as passages, each a list of sentences."""
    passages: list[list[str]] = [[]]
    for line in _data_text(LITERARY_PASSAGES).splitlines():
        if line.startswith("#"):
            continue
        if line.strip():
            passages[-1].append(line)
        elif passages[-1]:
            passages.append([])
    return [passage for passage in passages if passage]


def hostile_texts() -> list[HostileText]:
    """Return the hostile set with the ratings at which each text must be refused."""
    texts = []
    for number, line in enumerate(_data_text(HOSTILE_TEXTS).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            texts.append(
                HostileText(
                    text=entry["text"],
                    category=entry["category"],
                    refuse_at=frozenset(ContentRating(r) for r in entry["refuse_at"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{HOSTILE_TEXTS} line {number}: {exc}") from exc
    return texts


def measure_rating(
    policy: ContentPolicy,
    passages: Sequence[Sequence[str]],
    hostile: Sequence[HostileText],
) -> RatingFigures:
    """Check every clean sentence (as a turn), passage (as narration) and due hostile text."""
    figures = RatingFigures(rating=str(policy.rating))
    for passage in passages:
        for sentence in passage:
            figures.sentences += 1
            verdict = policy.check(sentence, TextKind.TURN)
            if not verdict.allowed:
                figures.sentences_refused.append(Refusal(sentence, verdict.rule))
        text = " ".join(passage)
        figures.passages += 1
        verdict = policy.check(text, TextKind.NARRATION)
        if not verdict.allowed:
            figures.passages_refused.append(Refusal(text, verdict.rule))
    caught: Counter[str] = Counter()
    for entry in hostile:
        if policy.rating not in entry.refuse_at:
            continue
        figures.hostile += 1
        verdict = policy.check(entry.text, TextKind.TURN)
        if verdict.allowed:
            figures.hostile_missed.append(Refusal(entry.text, None))
        else:
            caught[verdict.rule or "unknown"] += 1
    figures.caught_by_rule = dict(sorted(caught.items()))
    return figures


class _PrescoredClassifier(ProfanityClassifier):
    """A classifier that remembers its scores, so that they can be filled in one batch.

    The model's overhead is about 8 ms a call and its cost per text a fraction of that.
    """

    def __init__(self, model: ProfanityClassifier) -> None:
        super().__init__()
        self._model = model
        self._scores: dict[str, float] = {}

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        unknown = list(dict.fromkeys(text for text in texts if text not in self._scores))
        if unknown:
            self._scores.update(zip(unknown, self._model.probabilities(unknown), strict=True))
        return [self._scores[text] for text in texts]


def benchmark_safety(classifier: ProfanityClassifier | None = None) -> list[RatingFigures]:
    """Measure every rating's filters (default flood limits, no server words) on both sets."""
    passages = literary_passages()
    hostile = hostile_texts()
    prescored = _PrescoredClassifier(classifier or shared_classifier())
    prescored.probabilities(
        [
            normalize(text)
            for text in (
                *(sentence for passage in passages for sentence in passage),
                *(" ".join(passage) for passage in passages),
                *(entry.text for entry in hostile),
            )
        ]
    )
    return [
        measure_rating(ContentPolicy(rating, classifier=prescored), passages, hostile)
        for rating in ContentRating
    ]


def format_report(results: Sequence[RatingFigures]) -> str:
    """Return the figures as a table, then the refused clean texts and missed hostile ones."""
    lines = [
        "rating    clean sentences refused   clean passages refused   hostile caught",
    ]
    for figures in results:
        lines.append(
            f"{figures.rating:<9} "
            f"{len(figures.sentences_refused):>4}/{figures.sentences:<5} "
            f"{figures.sentences_refused_percent:6.2f}%      "
            f"{len(figures.passages_refused):>4}/{figures.passages:<5}"
            f"{figures.passages_refused_percent:6.2f}%      "
            f"{figures.hostile_caught:>3}/{figures.hostile:<3} "
            f"{figures.hostile_caught_percent:6.1f}%"
        )
    for figures in results:
        refused = figures.sentences_refused + figures.passages_refused
        if refused:
            lines.append(f"\n{figures.rating}: clean text refused")
            for refusal in refused[:SHOWN_EXAMPLES]:
                lines.append(f"  [{refusal.rule}] {_excerpt(refusal.text)}")
            if len(refused) > SHOWN_EXAMPLES:
                lines.append(f"  ... and {len(refused) - SHOWN_EXAMPLES} more (--json lists all)")
        if figures.hostile_missed:
            lines.append(f"\n{figures.rating}: hostile text let through")
            for missed in figures.hostile_missed:
                lines.append(f"  {_excerpt(missed.text)}")
    return "\n".join(lines)


def _excerpt(text: str, limit: int = 100) -> str:
    shown = ascii(text)[1:-1] if not text.isprintable() else text
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def report_json(results: Sequence[RatingFigures]) -> str:
    """Return the figures and every refused or missed text as JSON."""
    return json.dumps({"ratings": [figures.as_dict() for figures in results]}, indent=2)
