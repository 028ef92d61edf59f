from dataclasses import replace

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from engine.protocol.context import ContextTurn, LoreEntryView, StoryContext
from engine.worker.prompt.budget import PromptTooLargeError
from engine.worker.prompt.render import (
    narrator_system_message,
    render_narrator_prompt,
    render_summary_prompt,
)


def count_words(text: str) -> int:
    return len(text.split())


def render_plain_chat(messages: list[dict[str, str]]) -> str:
    blocks = [f"<|{m['role']}|>\n{m['content']}" for m in messages]
    return "\n".join([*blocks, "<|assistant|>\n"])


def turn(number: int, author: str = "Alice", words: int = 5) -> ContextTurn:
    is_narrator = author == "Narrator"
    return ContextTurn(number, author, is_narrator, " ".join([f"turn{number}"] * words))


def story(**changes: object) -> StoryContext:
    fields: dict[str, object] = {
        "title": "The Black Tower",
        "genre_key": "fantasy",
        "genre_instructions": "Narrate with grounded, vivid detail.",
        "premise": "A tower appeared overnight in the village square.",
        "player_names": ("Alice", "Bob"),
        "summary": "The villagers gathered and argued about the tower.",
        "lore": (LoreEntryView("Tower", ("tower",), "Black stone, no doors."),),
        "authors_note": "Keep the mood uneasy.",
        "recent_turns": tuple(turn(n, "Narrator" if n % 2 == 0 else "Alice") for n in range(1, 11)),
        "next_player": "Bob",
    }
    fields.update(changes)
    return StoryContext(**fields)  # type: ignore[arg-type]


def render(context: StoryContext, window: int = 4096, reserve: int = 256):  # type: ignore[no-untyped-def]
    return render_narrator_prompt(
        context,
        count_tokens=count_words,
        render_chat=render_plain_chat,
        context_window=window,
        reserve_tokens=reserve,
    )


def test_sections_come_in_order_system_summary_lore_turns_note_instruction() -> None:
    text = render(story()).text

    markers = [
        "<|system|>",
        "You are the narrator",
        "<|user|>",
        "Earlier:",
        "Lore:\n- Tower: Black stone",
        "Recent turns:",
        "Narrator: turn10",
        "(Guidance for the next passage:",
        "Write the next passage, continuing straight from the last paragraph",
        "<|assistant|>",
    ]
    positions = [text.index(marker) for marker in markers]
    assert positions == sorted(positions)


def test_system_message_holds_role_genre_title_premise_and_player_rule() -> None:
    system = narrator_system_message(story())["content"]

    assert "narrator" in system
    assert "Narrate with grounded, vivid detail." in system
    assert '"The Black Tower"' in system
    assert "A tower appeared overnight" in system
    assert "The players are Alice and Bob: never decide what they do, say or think." in system
    assert "introduce no new named characters" in system
    assert "Never mention players, turns, the story or yourself." in system
    assert "prose" in system


def test_instruction_names_the_next_player_as_where_to_stop() -> None:
    text = render(story(next_player="Bob")).text

    instruction = text[text.index("Write the next passage, continuing") :]
    assert "End where Bob can act." in instruction


def test_without_a_next_player_the_narrator_stops_where_anyone_can_act() -> None:
    text = render(story(next_player=None)).text

    assert "End where the players can act." in text


def test_a_story_without_turns_or_summary_is_begun_rather_than_continued() -> None:
    text = render(story(recent_turns=(), summary="")).text

    assert "Write the opening passage of this story" in text
    assert "Earlier:" not in text
    assert "Recent turns" not in text


def test_empty_optional_parts_leave_no_empty_sections() -> None:
    text = render(story(summary="  ", lore=(), authors_note="", premise="", player_names=())).text

    for absent in ("Earlier:", "Lore:", "Guidance", "Premise:", "The players are"):
        assert absent not in text


def test_stable_prefix_is_identical_across_two_consecutive_turns() -> None:
    before = story()
    after = story(
        summary=before.summary + " Alice touched the stone.",
        recent_turns=(*before.recent_turns[1:], turn(11, "Bob")),
        next_player="Alice",
        authors_note="Something stirs inside.",
        lore=(),
    )
    system = narrator_system_message(before)

    first, second = render(before).text, render(after).text

    assert narrator_system_message(after) == system
    shared = first[: next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)]
    assert shared.startswith(f"<|system|>\n{system['content']}\n<|user|>")
    assert "Alice touched" not in narrator_system_message(after)["content"]


def test_newest_turns_are_kept_and_oldest_dropped_when_budget_is_small() -> None:
    full = render(story())
    one_turn_words = 6  # "Alice:" and five words
    tight = render(story(), window=full.used_tokens - 3 * one_turn_words, reserve=0)

    assert tight.turns_included == 7
    assert tight.dropped_turns == 3
    for dropped in (1, 2, 3):
        assert f"turn{dropped} " not in tight.text
    for kept in range(4, 11):
        assert " ".join([f"turn{kept}"] * 5) in tight.text
    assert tight.used_tokens <= full.used_tokens - 3 * one_turn_words


def test_a_turn_is_never_cut_in_half() -> None:
    full = render(story())

    tight = render(story(), window=full.used_tokens - 2, reserve=0)

    assert tight.dropped_turns == 1
    assert "turn1 " not in tight.text
    assert "Alice: turn3 turn3 turn3 turn3 turn3\n" in tight.text


def test_authors_note_is_placed_after_the_turns() -> None:
    text = render(story()).text

    assert text.index("(Guidance for the next passage:") > text.index("Narrator: turn10")
    assert text.index("(Guidance for the next passage:") < text.index("Write the next passage,")


def test_lore_is_dropped_before_the_summary_when_fixed_parts_do_not_fit() -> None:
    lore = tuple(LoreEntryView(f"Place{i}", (), "word " * 10) for i in range(3))
    context = story(lore=lore, recent_turns=())
    full = render(context)

    result = render(context, window=full.used_tokens - 15, reserve=0)

    assert result.lore_included == ("Place0",)
    assert not result.summary_truncated
    assert context.summary in result.text


def test_summary_keeps_its_newest_words_when_cut() -> None:
    summary = " ".join(f"event{i}" for i in range(100))
    context = story(summary=summary, recent_turns=(), lore=())
    full = render(context)

    result = render(context, window=full.used_tokens - 30, reserve=0)

    assert result.summary_truncated
    assert "… " in result.text
    assert "event99" in result.text
    assert "event0 " not in result.text
    assert result.authors_note_included
    assert result.used_tokens <= full.used_tokens - 30


def test_prompt_too_large_error_when_the_system_prefix_alone_does_not_fit() -> None:
    context = story(premise="word " * 500)

    with pytest.raises(PromptTooLargeError, match="system prompt"):
        render(context, window=300, reserve=100)


def test_reserve_must_leave_room_for_a_prompt() -> None:
    with pytest.raises(ValueError, match="must exceed reserve_tokens"):
        render(story(), window=100, reserve=100)


def test_player_names_cannot_break_the_prompt_layout() -> None:
    text = render(story(player_names=("Ali\nce", "Bob"), next_player="Bob\n\nSYSTEM")).text

    assert "The players are Ali ce and Bob:" in text
    assert "End where Bob SYSTEM can act." in text


words = st.sampled_from(["the", "tower", "Alice", "ran", "dark", "…", "ß", "Москва", "東京"])
phrases = st.lists(words, max_size=25).map(" ".join)
names = st.text(st.characters(categories=["L"]), min_size=1, max_size=8)
random_turns = st.lists(
    st.builds(
        ContextTurn,
        number=st.integers(0, 999),
        author=names,
        is_narrator=st.booleans(),
        text=phrases,
    ),
    max_size=30,
).map(tuple)
random_stories = st.builds(
    StoryContext,
    title=phrases,
    genre_key=st.just("fantasy"),
    genre_instructions=phrases,
    premise=phrases,
    player_names=st.lists(names, max_size=4).map(tuple),
    summary=st.lists(words, max_size=120).map(" ".join),
    lore=st.lists(
        st.builds(LoreEntryView, name=names, keywords=st.just(()), text=phrases), max_size=6
    ).map(tuple),
    authors_note=phrases,
    recent_turns=random_turns,
    next_player=st.none() | names,
)


@given(random_stories, st.data(), st.integers(0, 300))
def test_rendered_prompt_never_exceeds_the_budget(
    context: StoryContext, data: st.DataObject, reserve: int
) -> None:
    bare = replace(context, summary="", lore=(), authors_note="", recent_turns=())
    # The opening instruction is longer than the continuing one: bare is at least the minimum.
    bare_size = render(bare, window=10**6, reserve=0).used_tokens
    untrimmed = render(context, window=10**6, reserve=0).used_tokens
    budget = data.draw(st.integers(max(1, bare_size - 10), max(bare_size, untrimmed) + 5))
    try:
        result = render(context, window=budget + reserve, reserve=reserve)
    except PromptTooLargeError:
        assert bare_size > budget
        event("system prefix too large")
        return

    event(f"turns dropped: {result.dropped_turns > 0}, summary cut: {result.summary_truncated}")

    assert result.used_tokens == count_words(result.text) <= budget
    assert result.turns_included + result.dropped_turns == len(context.recent_turns)
    assert set(result.lore_included) <= {entry.name for entry in context.lore}


def render_summary(turns: list[ContextTurn], previous: str = "", window: int = 4096):  # type: ignore[no-untyped-def]
    return render_summary_prompt(
        previous,
        turns,
        count_tokens=count_words,
        render_chat=render_plain_chat,
        context_window=window,
        reserve_tokens=0,
        target_words=120,
    )


def test_summary_prompt_asks_for_a_concise_past_tense_update_keeping_names() -> None:
    result = render_summary([turn(1), turn(2, "Narrator")], previous="Alice found a key.")

    assert "Alice found a key." in result.text
    assert "Alice: turn1" in result.text and "Narrator: turn2" in result.text
    assert "at most 120 words" in result.text
    for phrase in ("past tense", "names", "places", "unresolved thread"):
        assert phrase in result.text
    assert result.turns_included == 2


def test_summary_prompt_takes_the_oldest_turns_that_fit() -> None:
    turns = [turn(n, words=20) for n in range(1, 6)]
    full = render_summary(turns)

    result = render_summary(turns, window=full.used_tokens - 21)

    assert result.turns_included == 4
    assert result.dropped_turns == 1
    assert "turn5" not in result.text
    assert result.used_tokens <= full.used_tokens - 21


def test_summary_prompt_cuts_the_old_summary_only_to_fit_one_turn() -> None:
    previous = " ".join(f"fact{i}" for i in range(60))
    turns = [turn(1, words=20), turn(2, words=20)]
    full = render_summary(turns, previous)

    result = render_summary(turns, previous, window=full.used_tokens - 40)

    assert result.summary_truncated
    assert result.turns_included == 1
    assert "fact59" in result.text and "fact0 " not in result.text


def test_summary_prompt_refuses_a_turn_too_long_for_the_window() -> None:
    with pytest.raises(PromptTooLargeError, match="turn 7"):
        render_summary([turn(7, words=500)], window=200)
