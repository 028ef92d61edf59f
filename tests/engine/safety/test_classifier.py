from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from engine.safety import ProfanityClassifier
from engine.safety import classifier as classifier_module


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        pytest.param("fuck you, you stupid bitch", 0.99, 1.0, id="abuse"),
        pytest.param("The knight rode north under a grey sky.", 0.0, 0.1, id="prose"),
        pytest.param("   ", 0.0, 0.0, id="blank"),
    ],
)
def test_probability_is_clear_for_clear_cases(
    classifier: ProfanityClassifier, text: str, low: float, high: float
) -> None:
    assert low <= classifier.probability(text) <= high


def test_the_model_is_imported_on_first_use_only() -> None:
    script = (
        "import sys\n"
        "from engine.safety import ProfanityClassifier\n"
        "classifier = ProfanityClassifier()\n"
        "print('profanity_check' in sys.modules)\n"
        "classifier.probability('hello')\n"
        "print('profanity_check' in sys.modules)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.split() == ["False", "True"]


def test_concurrent_first_calls_load_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    imports: list[str] = []

    class SlowModule:
        @staticmethod
        def predict_prob(texts: list[str]) -> list[float]:
            return [0.25 for _ in texts]

    def slow_import(name: str) -> Any:
        imports.append(name)
        time.sleep(0.05)
        return SlowModule

    monkeypatch.setattr(classifier_module.importlib, "import_module", slow_import)
    shared = ProfanityClassifier()
    results: list[float] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        results.append(shared.probability("some text"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert imports == ["profanity_check"]
    assert results == [0.25] * 8
