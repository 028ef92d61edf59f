"""A statistical profanity classifier, loaded at start-up (or else on first use)."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

# Measured with alt-profanity-check 1.9: it scores insults and mild swearing as high
# as obscenity ("stupid" 1.0, "Damn you, orc!" 0.98, "Get out of my tavern, you filthy
# pig." 0.99), so above the everyone rating it would refuse what teen and mature
# stories allow; there the word lists alone decide. 0.9 rather than lower for
# everyone lets ordinary exclamations through ("What the hell was that noise?" 0.77,
# "Bloody hell, the dead are walking" 0.86) while clear abuse scores above 0.97.
# Over the threshold, ClassifierFilter still asks what the score rests on (see there).
CLASSIFIER_THRESHOLDS: dict[str, float | None] = {
    "everyone": 0.9,
    "teen": None,
    "mature": None,
}


class ProfanityClassifier:
    """Estimate how likely a text is profane or offensive, between 0 and 1.

    The model (``profanity_check``, a linear SVM shipped inside its wheel) is imported
    by ``load`` or on the first call, once, even when several threads ask at the same
    time. Importing it takes about a second: a front-end loads it in a worker thread
    before it serves anyone, so that no check stalls its event loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._predict: Any = None

    @property
    def loaded(self) -> bool:
        """Tell whether the model is in memory."""
        return self._predict is not None

    def load(self) -> None:
        """Import the model now (blocking; call it from a worker thread)."""
        self._predictor()

    def probability(self, text: str) -> float:
        """Return the probability that ``text`` is offensive."""
        return self.probabilities([text])[0]

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """Return the probability that each of ``texts`` is offensive, in one model call."""
        asked = [text for text in texts if text.strip()]
        scores = iter(self._predictor()(asked) if asked else ())
        return [float(next(scores)) if text.strip() else 0.0 for text in texts]

    def _predictor(self) -> Any:
        if self._predict is None:
            with self._lock:
                if self._predict is None:
                    log.debug("Loading the profanity classifier")
                    module = importlib.import_module("profanity_check")
                    self._predict = module.predict_prob
        return self._predict


_shared: ProfanityClassifier | None = None
_shared_lock = threading.Lock()


def shared_classifier() -> ProfanityClassifier:
    """Return the process-wide classifier, so that the model is loaded only once."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ProfanityClassifier()
        return _shared
