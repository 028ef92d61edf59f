"""A job's runner-up passages are kept as spare versions: a retry uses them, no new job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from engine.queue.interfaces import GeneratedText
from engine.queue.jobs import GenerationJob
from engine.runtime import StoryRuntime
from tests.engine.narrator.test_filters import open_runtime, play_one_turn

from support.recording import RecordingListener
from support.stories import ALICE, CHANNEL, GUILD, MOD


class NarratorWithSpares:
    """Answer each job with a passage and its runners-up."""

    def __init__(self, answers: Sequence[GeneratedText]) -> None:
        self.answers = list(answers)
        self.jobs: list[GenerationJob] = []

    def __call__(
        self, jobs: list[GenerationJob], on_progress: Callable[[str, str], None]
    ) -> list[tuple[str, GeneratedText]]:
        results = []
        for job in jobs:
            self.jobs.append(job)
            results.append((job.job_id, self.answers.pop(0)))
        return results


async def retried(runtime: StoryRuntime, listener: RecordingListener, count: int) -> None:
    await runtime.table.retry_narrator(CHANNEL, ALICE)
    await listener.wait_for(lambda: len(listener.stored) >= count, seconds=30)


async def test_retry_uses_a_spare_passage_without_a_new_job(tmp_path: Path) -> None:
    narrator = NarratorWithSpares(
        [
            GeneratedText("The door creaks open.", ("The hinges scream.", "Dust falls.")),
            GeneratedText("A lamp flickers on."),
        ]
    )
    runtime = await open_runtime(tmp_path, narrator)  # type: ignore[arg-type]
    try:
        listener = await play_one_turn(runtime)
        first = listener.stored[-1].turn
        assert first.text == "The door creaks open."
        assert first.alternatives == ("The hinges scream.", "Dust falls.")

        await retried(runtime, listener, 2)
        second = listener.stored[-1].turn
        assert second.number == first.number
        assert second.text == "The hinges scream."
        assert set(second.alternatives) == {"Dust falls.", "The door creaks open."}

        await retried(runtime, listener, 3)
        assert listener.stored[-1].turn.text == "Dust falls."
        assert len(narrator.jobs) == 1  # both retries came from spares

        await retried(runtime, listener, 4)  # spares spent: the narrator writes again
        assert listener.stored[-1].turn.text == "A lamp flickers on."
        assert len(narrator.jobs) == 2
        assert set(listener.stored[-1].turn.alternatives) == {
            "The door creaks open.",
            "The hinges scream.",
            "Dust falls.",
        }
    finally:
        await runtime.close()


async def test_spares_breaking_the_rules_are_never_kept_or_used(tmp_path: Path) -> None:
    narrator = NarratorWithSpares(
        [
            GeneratedText("The door creaks open.", ("A moonstone glows.", "Dust falls.")),
            GeneratedText("A lamp flickers on."),
        ]
    )
    runtime = await open_runtime(tmp_path, narrator)  # type: ignore[arg-type]
    try:
        listener = await play_one_turn(runtime)
        assert listener.stored[-1].turn.alternatives == ("Dust falls.",)

        # The server's rules change after the spare was kept: it is dropped, not shown.
        await runtime.configs.update(GUILD, MOD, blocked_words=["moonstone", "dust"])
        await retried(runtime, listener, 2)
        assert listener.stored[-1].turn.text == "A lamp flickers on."
        assert "Dust falls." not in listener.stored[-1].turn.alternatives
        assert len(narrator.jobs) == 2
    finally:
        await runtime.close()
