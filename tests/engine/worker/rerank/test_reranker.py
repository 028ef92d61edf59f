from __future__ import annotations

from engine.worker.model.generator import Candidate
from engine.worker.rerank.reranker import rank_candidates, score_passage
from tests.engine.worker.rerank.test_passage_checks import GOOD, SCENE

OFF_SCENE = "In a small flat in the city, a baker counted coins while the kettle sang on the stove."
INVENTED = "Amar and Avery climbed the stairs to the lamp room, where the logbook lay open to them."


def candidate(text: str, logprob: float = -2.0) -> Candidate:
    return Candidate(text=text, raw_text=text, new_tokens=len(text.split()), mean_logprob=logprob)


def test_junk_is_never_ranked() -> None:
    ranked = rank_candidates(
        [candidate("(silence)", -0.1), candidate("It is your turn, players.", -0.2)], SCENE
    )

    assert ranked == []


def test_a_passage_breaking_no_rule_beats_a_likelier_one_that_does() -> None:
    ranked = rank_candidates(
        [candidate(OFF_SCENE, -0.5), candidate(INVENTED, -0.6), candidate(GOOD, -2.5)], SCENE
    )

    assert [p.text for p in ranked] == [GOOD, INVENTED, OFF_SCENE]


def test_between_clean_passages_the_likelier_wins() -> None:
    other = (
        "Mira lifted the lamp from its hook, and the light swung over the logbook and the glass."
    )
    ranked = rank_candidates([candidate(GOOD, -2.4), candidate(other, -1.9)], SCENE)

    assert ranked[0].text == other


def test_identical_candidates_are_kept_once() -> None:
    assert len(rank_candidates([candidate(GOOD), candidate(GOOD + "  ")], SCENE)) == 1


def test_a_candidate_without_likelihood_still_ranks_below_likely_ones() -> None:
    ranked = rank_candidates(
        [candidate(GOOD, float("-inf")), candidate(GOOD + " More.", -3.0)], SCENE
    )

    assert ranked[0].mean_logprob == -3.0
    assert score_passage(ranked[1].check, float("-inf")) < ranked[0].score
