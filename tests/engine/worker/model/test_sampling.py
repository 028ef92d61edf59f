from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from engine.protocol.sampling import SamplingSettings


def test_defaults_are_the_documented_ones() -> None:
    settings = SamplingSettings()

    assert settings.model_dump() == {
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.95,
        "repetition_penalty": 1.1,
        "no_repeat_ngram_size": 3,
        "max_new_tokens": 120,
        "num_beams": 1,
        "max_paragraphs": 2,
        "max_sentences": 4,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", 2.01),
        ("top_k", -1),
        ("top_k", 201),
        ("top_p", 0.04),
        ("top_p", 1.01),
        ("repetition_penalty", 0.99),
        ("repetition_penalty", 2.01),
        ("no_repeat_ngram_size", -1),
        ("max_sentences", 0),
        ("max_sentences", 13),
        ("no_repeat_ngram_size", 11),
        ("max_new_tokens", 7),
        ("max_new_tokens", 513),
        ("num_beams", 0),
        ("num_beams", 5),
        ("max_paragraphs", 0),
        ("max_paragraphs", 6),
    ],
)
def test_out_of_bounds_value_is_rejected(field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        SamplingSettings(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.0),
        ("temperature", 2.0),
        ("top_k", 0),
        ("top_k", 200),
        ("top_p", 0.05),
        ("top_p", 1.0),
        ("repetition_penalty", 1.0),
        ("repetition_penalty", 2.0),
        ("no_repeat_ngram_size", 0),
        ("no_repeat_ngram_size", 10),
        ("max_new_tokens", 8),
        ("max_new_tokens", 512),
        ("num_beams", 1),
        ("num_beams", 4),
        ("max_paragraphs", 1),
        ("max_paragraphs", 5),
    ],
)
def test_boundary_value_is_accepted(field: str, value: float) -> None:
    assert getattr(SamplingSettings(**{field: value}), field) == value


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError):
        SamplingSettings(temprature=0.5)  # type: ignore[call-arg]


def test_settings_are_frozen() -> None:
    settings = SamplingSettings()

    with pytest.raises(ValidationError):
        settings.temperature = 1.0  # type: ignore[misc]


def test_equal_settings_group_together_in_a_dict() -> None:
    groups: dict[SamplingSettings, list[str]] = {}
    for job, settings in [
        ("a", SamplingSettings()),
        ("b", SamplingSettings(temperature=0.3)),
        ("c", SamplingSettings()),
    ]:
        groups.setdefault(settings, []).append(job)

    assert list(groups.values()) == [["a", "c"], ["b"]]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            SamplingSettings(),
            {
                "do_sample": True,
                "temperature": 0.8,
                "top_k": 40,
                "top_p": 0.95,
                "num_beams": 1,
                "max_new_tokens": 120,
                "repetition_penalty": 1.1,
                "no_repeat_ngram_size": 3,
            },
        ),
        (
            SamplingSettings(temperature=0.0),
            {
                "do_sample": False,
                "num_beams": 1,
                "max_new_tokens": 120,
                "repetition_penalty": 1.1,
                "no_repeat_ngram_size": 3,
            },
        ),
        (
            SamplingSettings(num_beams=3, temperature=1.2),
            {
                "do_sample": False,
                "num_beams": 3,
                "early_stopping": True,
                "max_new_tokens": 120,
                "repetition_penalty": 1.1,
                "no_repeat_ngram_size": 3,
            },
        ),
    ],
    ids=["sampling", "greedy-when-temperature-is-zero", "beam-search-is-deterministic"],
)
def test_generate_kwargs_match_the_decoding_mode(
    settings: SamplingSettings, expected: dict[str, Any]
) -> None:
    assert settings.to_generate_kwargs() == expected


@pytest.mark.parametrize(
    ("settings", "greedy"),
    [
        (SamplingSettings(), False),
        (SamplingSettings(temperature=0), True),
        (SamplingSettings(num_beams=2), True),
    ],
)
def test_is_greedy_reports_deterministic_decoding(settings: SamplingSettings, greedy: bool) -> None:
    assert settings.is_greedy is greedy
