from __future__ import annotations

from engine.narrator.context_builder import KEEP_RECENT_TURNS, StoryContextBuilder
from engine.story import StoryService

from support.stories import ALICE, BOB, CHANNEL, started


async def test_narrator_context_carries_story_lore_and_next_player(
    service: StoryService, session_factory
) -> None:
    view = await started(service, ALICE, BOB)
    await service.lore.add_lore(CHANNEL, ALICE, "The Door", ["door"], "It opens at dusk.")
    await service.lore.add_lore(CHANNEL, ALICE, "The Gull", ["gull"], "It talks.")
    await service.lifecycle.set_authors_note(CHANNEL, ALICE, "Keep it eerie.")
    outcome = await service.turns.submit_turn(CHANNEL, ALICE, "I knock on the door.")
    assert outcome.narration is not None
    _, context = await StoryContextBuilder(session_factory).narrator_job(view.id)
    assert context.title == "The Lantern" and context.genre_key == "fantasy"
    assert context.genre_instructions
    assert context.player_names == ("Alice", "Bob")
    assert context.next_player == "Bob"
    assert [t.text for t in context.recent_turns] == ["I knock on the door."]
    assert [e.name for e in context.lore] == ["The Door"]  # the gull is not mentioned
    assert context.authors_note == "Keep it eerie."


async def test_retry_context_leaves_out_the_passage_being_replaced(
    service: StoryService, session_factory
) -> None:
    view = await started(service, ALICE, BOB)
    job = (await service.turns.submit_turn(CHANNEL, ALICE, "I knock.")).narration
    assert job is not None
    await service.ledger.record_narration(view.id, job.job_id, "Nobody answers.")
    retry = await service.ledger.retry_narration(CHANNEL, ALICE)
    _, context = await StoryContextBuilder(session_factory).narrator_job(
        view.id, retry_of_turn=retry.retry_of_turn
    )
    assert [t.text for t in context.recent_turns] == ["I knock."]


async def test_summary_task_appears_only_when_turns_outgrow_their_budget(
    service: StoryService, session_factory
) -> None:
    view = await started(service, ALICE, BOB)
    builder = StoryContextBuilder(session_factory)
    assert await builder.summary_task(view.id) is None
    for number in range(1, 30):
        pending = await service.queries.get(view.id)
        assert pending.current_player is not None
        writer = ALICE if pending.current_player.user_id == ALICE.user_id else BOB
        outcome = await service.turns.submit_turn(
            CHANNEL, writer, f"Turn {number}. " + "the road went on and " * 48
        )
        assert outcome.narration is not None
        await service.ledger.narration_failed(view.id, outcome.narration.job_id)
    task = await builder.summary_task(view.id)
    assert task is not None
    assert task.turns[0].number == 1
    assert task.covers_through_turn <= 29 - KEEP_RECENT_TURNS
    await service.ledger.record_summary(
        view.id, "sum-1", "Things happened.", task.covers_through_turn
    )
    _, context = await builder.narrator_job(view.id)
    assert context.summary == "Things happened."
    assert context.recent_turns[0].number == task.covers_through_turn + 1
