"""`taleweaver bench safety`: clean published prose refused and hostile text caught."""

from __future__ import annotations

import json

import pytest

from bot.cli import main
from engine.ops import bench_safety
from engine.ops.bench_safety import (
    RatingFigures,
    benchmark_safety,
    format_report,
    hostile_texts,
    literary_passages,
)
from storage.models import ContentRating

# What the filters caught before the classifier was made to look at whom a text aims at
# (same data, same flood-free hostile entries): the catch rate may only go up.
CAUGHT_BEFORE = {"everyone": 124, "teen": 61, "mature": 45}


@pytest.fixture(scope="module")
def figures() -> dict[str, RatingFigures]:
    return {result.rating: result for result in benchmark_safety()}


def test_the_clean_corpus_is_large_and_made_of_passages() -> None:
    passages = literary_passages()
    sentences = [sentence for passage in passages for sentence in passage]

    assert len(sentences) >= 1000
    assert len(passages) == 1000
    assert all(2 <= len(passage) <= 8 for passage in passages)
    assert not any(sentence.startswith("#") for sentence in sentences)


def test_every_hostile_text_is_due_at_everyone_and_stricter_ratings_are_a_subset() -> None:
    texts = hostile_texts()

    assert len(texts) >= 100
    for entry in texts:
        assert ContentRating.EVERYONE in entry.refuse_at, entry
        if ContentRating.MATURE in entry.refuse_at:
            assert ContentRating.TEEN in entry.refuse_at, entry
    assert {entry.category for entry in texts} >= {"slur", "insult", "flood"}


def test_at_everyone_at_most_three_in_a_thousand_clean_sentences_and_passages_are_refused(
    figures: dict[str, RatingFigures],
) -> None:
    assert figures["everyone"].sentences_refused_percent <= 0.3
    assert len(figures["everyone"].passages_refused) <= 3
    for rating in ("teen", "mature"):
        assert figures[rating].sentences_refused == []
        assert figures[rating].passages_refused == []


def test_the_classifier_refuses_no_clean_passage(figures: dict[str, RatingFigures]) -> None:
    refused_by = {refusal.rule for refusal in figures["everyone"].passages_refused}

    assert "classifier" not in refused_by


@pytest.mark.parametrize("rating", ["everyone", "teen", "mature"])
def test_the_hostile_catch_rate_does_not_drop(
    figures: dict[str, RatingFigures], rating: str
) -> None:
    result = figures[rating]
    floods = sum(
        1
        for entry in hostile_texts()
        if entry.category == "flood" and ContentRating(rating) in entry.refuse_at
    )

    assert result.hostile_caught >= CAUGHT_BEFORE[rating] + floods
    assert result.caught_by_rule.get("emoji_flood", 0) > 0


def test_the_report_shows_both_figures_per_rating(figures: dict[str, RatingFigures]) -> None:
    report = format_report(list(figures.values()))

    header, *rows = report.splitlines()[:4]
    assert "clean sentences refused" in header and "hostile caught" in header
    assert [row.split()[0] for row in rows] == ["everyone", "teen", "mature"]
    assert f"{figures['mature'].hostile_caught}/{figures['mature'].hostile}" in rows[2]


def test_the_cli_prints_the_figures_as_json(
    figures: dict[str, RatingFigures],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(bench_safety, "benchmark_safety", lambda: list(figures.values()))

    assert main(["bench", "safety", "--json"]) == 0

    printed = json.loads(capsys.readouterr().out)
    everyone = printed["ratings"][0]
    assert everyone["rating"] == "everyone"
    assert everyone["sentences"] == figures["everyone"].sentences
    assert everyone["sentences_refused_percent"] == round(
        figures["everyone"].sentences_refused_percent, 3
    )
    assert everyone["hostile_caught"] == figures["everyone"].hostile_caught
    assert all("text" in refusal for refusal in everyone["sentences_refused"])
