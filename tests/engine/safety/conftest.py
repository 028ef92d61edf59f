"""Fixtures for the safety filters: the real classifier (loaded once) and a fake one."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from engine.safety import ProfanityClassifier


class FixedClassifier(ProfanityClassifier):
    """A classifier that answers the same probability for every text, and counts calls."""

    def __init__(self, probability: float) -> None:
        super().__init__()
        self.fixed = probability
        self.calls: list[str] = []

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        self.calls.extend(texts)
        return [self.fixed for _ in texts]


@pytest.fixture(scope="session")
def classifier() -> ProfanityClassifier:
    return ProfanityClassifier()


@pytest.fixture
def fixed_classifier() -> type[FixedClassifier]:
    return FixedClassifier
