"""Choose the narrator's passage among several candidates of one prompt.

Junk (empty, a fragment or filler, talk about the game, lists or headings) is never
chosen. The rest are ordered by the model's own mean log-likelihood of the passage
given the story, less a penalty for each rule the passage breaks; the penalties are
larger than the usual spread of likelihoods between candidates, so a candidate that
breaks a rule loses to one that does not (weights in README, "Best of n").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.worker.model.generator import Candidate
from engine.worker.rerank.passage_checks import PassageCheck, Scene, check_passage

FAULT_PENALTIES: dict[str, float] = {
    "off_scene": 3.0,
    "invented_name": 2.0,
    "repetitive": 1.5,
}


@dataclass(frozen=True)
class RankedPassage:
    """A candidate that may be shown, with its measurements and score."""

    text: str
    check: PassageCheck
    mean_logprob: float
    score: float


def score_passage(check: PassageCheck, mean_logprob: float) -> float:
    """Return a candidate's score: likelihood less the penalties of the rules it breaks."""
    likelihood = mean_logprob if mean_logprob > float("-inf") else -20.0
    return likelihood - sum(FAULT_PENALTIES.get(fault, 0.0) for fault in check.faults)


def rank_candidates(candidates: Sequence[Candidate], scene: Scene) -> list[RankedPassage]:
    """Return the candidates that are not junk, best first, each text once."""
    ranked: dict[str, RankedPassage] = {}
    for candidate in candidates:
        text = candidate.text.strip()
        check = check_passage(text, scene)
        if check.junk:
            continue
        passage = RankedPassage(
            text=text,
            check=check,
            mean_logprob=candidate.mean_logprob,
            score=score_passage(check, candidate.mean_logprob),
        )
        known = ranked.get(text)
        if known is None or passage.score > known.score:
            ranked[text] = passage
    return sorted(ranked.values(), key=lambda p: p.score, reverse=True)
