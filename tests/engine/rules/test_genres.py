import re

import pytest

from engine.errors import InvalidSetting
from engine.rules.genres import (
    GENRE_KEYS,
    MAX_CUSTOM_INSTRUCTIONS_CHARS,
    SAMPLING_KEYS,
    UnknownGenre,
    custom_preset,
    get_preset,
    validate_sampling,
)

EXPECTED_KEYS = ("fantasy", "scifi", "mystery", "horror", "romance", "comedy", "adventure")


def test_catalogue_offers_every_genre_and_custom() -> None:
    assert GENRE_KEYS == (*EXPECTED_KEYS, "custom")


@pytest.mark.parametrize("key", GENRE_KEYS)
def test_preset_has_name_two_to_four_sentences_and_known_sampling_keys(key: str) -> None:
    preset = get_preset(key)

    sentences = re.findall(r"[.!?](?:\s|$)", preset.narrator_instructions)
    assert preset.key == key
    assert preset.display_name.strip()
    assert 2 <= len(sentences) <= 4
    assert preset.sampling
    assert set(preset.sampling) <= SAMPLING_KEYS
    assert type(preset.sampling) is dict


def test_science_fiction_is_keyed_scifi() -> None:
    assert get_preset("scifi").display_name == "Science fiction"


@pytest.mark.parametrize("spelling", ["Horror", " HORROR ", "horror"])
def test_preset_lookup_ignores_case_and_surrounding_spaces(spelling: str) -> None:
    assert get_preset(spelling).key == "horror"


def test_unknown_genre_error_lists_valid_keys() -> None:
    with pytest.raises(UnknownGenre) as raised:
        get_preset("western")

    message = str(raised.value)
    assert "'western'" in message
    assert all(key in message for key in GENRE_KEYS)
    assert isinstance(raised.value, InvalidSetting)


def test_changing_a_returned_preset_does_not_change_the_catalogue() -> None:
    get_preset("comedy").sampling["temperature"] = 2.0

    assert get_preset("comedy").sampling["temperature"] != 2.0


def test_custom_preset_carries_moderator_instructions_and_merged_sampling() -> None:
    preset = custom_preset("  Write like a noir detective novel.  ", {"temperature": 0.6})

    assert preset.key == "custom"
    assert preset.narrator_instructions == "Write like a noir detective novel."
    assert preset.sampling["temperature"] == 0.6
    assert preset.sampling["top_p"] == get_preset("custom").sampling["top_p"]


@pytest.mark.parametrize("instructions", ["", "   ", "x" * (MAX_CUSTOM_INSTRUCTIONS_CHARS + 1)])
def test_custom_preset_refuses_empty_or_overlong_instructions(instructions: str) -> None:
    with pytest.raises(InvalidSetting):
        custom_preset(instructions)


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"temprature": 0.7}, "Unknown sampling setting"),
        ({"temperature": "hot"}, "must be a number"),
        ({"top_k": 4.5}, "must be a whole number"),
        ({"num_beams": True}, "must be a whole number"),
        ({"temperature": 3}, "between 0.0 and 2.0"),
        ({"top_p": 1.5}, "between 0.05 and 1.0"),
        ({"max_new_tokens": 0}, "between 8 and 512"),
        ({"no_repeat_ngram_size": -1}, "between 0 and 10"),
        ({"repetition_penalty": 5}, "between 1.0 and 2.0"),
    ],
)
def test_invalid_sampling_override_is_refused_with_reason(
    overrides: dict[str, object], complaint: str
) -> None:
    with pytest.raises(InvalidSetting, match=re.escape(complaint)):
        validate_sampling(overrides)


def test_integer_is_accepted_for_a_float_setting() -> None:
    assert validate_sampling({"temperature": 1, "top_k": 40}) == {"temperature": 1, "top_k": 40}


def test_every_accepted_override_is_accepted_by_the_worker() -> None:
    from engine.protocol.bounds import field_bounds
    from engine.protocol.sampling import SamplingSettings

    # The extreme values the engine stores must not make the worker reject the job.
    for name in SamplingSettings.model_fields:
        for value in field_bounds(SamplingSettings, name):
            if value is not None:
                SamplingSettings(**validate_sampling({name: value}))
