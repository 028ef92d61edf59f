"""Render a story context into the narrator's prompt, within the model's token budget.

Layout of the narrator prompt, as two chat messages, written for small instruct
models (measured with `taleweaver bench quality`, README "The narrator's prompt"):

1. system: a few short rules (prose, the passage's length, stay in the scene, no new
   names, never write for the players, never talk about the game), the genre's
   style, title and premise. Nothing that changes from turn to turn goes here, so it
   is a stable prefix a prefix cache can reuse (until the roster, premise or genre
   changes).
2. user: "Earlier" (rolling summary), triggered lore, the recent turns labelled with
   their authors (unlabelled prose lost the scene more often), the author's note as
   guidance, and last the instruction: continue from the last paragraph and stop
   where the next player can act.

One user message rather than alternating user/assistant turns, because several
players write in a row and some chat templates reject non-alternating roles.

When the budget is short, parts are given room in this order: system prefix and
the instruction (required), author's note, summary (its oldest words cut first),
lore entries (in the given order), then recent turns newest first (whole turns only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from engine.protocol.context import ContextTurn, LoreEntryView, StoryContext
from engine.worker.prompt.budget import (
    ChatMessages,
    ChatRenderer,
    PromptTooLargeError,
    TokenBudget,
    TokenCounter,
    largest_fitting,
)
from engine.worker.prompt.markers import speaker_label

log = logging.getLogger(__name__)

NARRATOR_LABEL = "Narrator"
DEFAULT_SUMMARY_WORDS = 200
_ELLIPSIS = "… "


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready for the model, with what made it in and what was left out."""

    text: str
    used_tokens: int
    turns_included: int
    lore_included: tuple[str, ...]
    dropped_turns: int
    summary_truncated: bool = False
    authors_note_included: bool = False


@dataclass(frozen=True)
class _NarratorParts:
    summary: str = ""
    lore: tuple[LoreEntryView, ...] = ()
    turns: tuple[ContextTurn, ...] = ()
    authors_note: str = ""


_MessageBuilder = Callable[[_NarratorParts], ChatMessages]


def narrator_system_message(context: StoryContext) -> dict[str, str]:
    """Return the system message: the stable prefix shared by every turn of a story."""
    title = _one_line(context.title)
    story = f'the story "{title}"' if title else "a story"
    lines = [
        f"You are the narrator of {story}. Write the next passage: a few sentences of "
        "vivid prose in the past tense.",
        "Stay in the scene: use the people, places and things already in it, and "
        "introduce no new named characters.",
        _players_rule(context.player_names),
        "Never mention players, turns, the story or yourself. No lists, titles or notes.",
    ]
    if context.genre_instructions.strip():
        lines.append(f"Style: {context.genre_instructions.strip()}")
    if context.premise.strip():
        lines.append(f"Premise: {context.premise.strip()}")
    return {"role": "system", "content": "\n".join(lines)}


def render_narrator_prompt(
    context: StoryContext,
    *,
    count_tokens: TokenCounter,
    render_chat: ChatRenderer,
    context_window: int,
    reserve_tokens: int,
) -> RenderedPrompt:
    """Return the narrator's prompt for ``context``, trimmed to fit the token budget."""
    budget = TokenBudget.for_window(
        count_tokens=count_tokens,
        render_chat=render_chat,
        context_window=context_window,
        reserve_tokens=reserve_tokens,
    )
    system = narrator_system_message(context)

    def messages(parts: _NarratorParts) -> ChatMessages:
        return [system, {"role": "user", "content": _narrator_request(context, parts)}]

    everything = _NarratorParts(
        context.summary.strip(), context.lore, context.recent_turns, context.authors_note.strip()
    )
    text, used = budget.measure(messages(everything))
    parts = everything
    if used > budget.limit:
        parts = _fit_narrator_parts(everything, budget, messages)
        text, used = budget.measure(messages(parts))
    dropped = len(context.recent_turns) - len(parts.turns)
    if dropped:
        log.debug("narrator prompt: %d oldest turns left out to fit %d tokens", dropped, used)
    return RenderedPrompt(
        text=text,
        used_tokens=used,
        turns_included=len(parts.turns),
        lore_included=tuple(entry.name for entry in parts.lore),
        dropped_turns=dropped,
        summary_truncated=parts.summary != everything.summary,
        authors_note_included=bool(parts.authors_note),
    )


def _fit_narrator_parts(
    everything: _NarratorParts,
    budget: TokenBudget,
    messages: _MessageBuilder,
) -> _NarratorParts:
    """Give each part, in priority order, as much room as the higher ones leave."""
    parts = _NarratorParts()
    _require_fit(budget, messages(parts), "the narrator's system prompt and instruction")
    if everything.authors_note:
        with_note = _NarratorParts(authors_note=everything.authors_note)
        if budget.fits(messages(with_note)):
            parts = with_note
        else:
            log.warning("narrator prompt: author's note left out, it does not fit the window")

    summary_words = everything.summary.split()
    kept = largest_fitting(
        len(summary_words),
        lambda n: budget.fits(messages(replace(parts, summary=_tail(everything.summary, n)))),
    )
    parts = replace(parts, summary=_tail(everything.summary, kept))
    if kept < len(summary_words):
        log.warning(
            "narrator prompt: summary cut to its last %d of %d words", kept, len(summary_words)
        )

    lore_count = largest_fitting(
        len(everything.lore),
        lambda n: budget.fits(messages(replace(parts, lore=everything.lore[:n]))),
    )
    parts = replace(parts, lore=everything.lore[:lore_count])
    if lore_count < len(everything.lore):
        log.info("narrator prompt: %d lore entries left out", len(everything.lore) - lore_count)

    turns = everything.turns
    turn_count = largest_fitting(
        len(turns), lambda n: budget.fits(messages(replace(parts, turns=_newest(turns, n))))
    )
    return replace(parts, turns=_newest(turns, turn_count))


def render_summary_prompt(
    previous_summary: str,
    turns: Sequence[ContextTurn],
    *,
    count_tokens: TokenCounter,
    render_chat: ChatRenderer,
    context_window: int,
    reserve_tokens: int,
    target_words: int = DEFAULT_SUMMARY_WORDS,
) -> RenderedPrompt:
    """Return a prompt asking the model to fold ``turns`` (oldest first) into the summary.

    Turns are taken oldest first and whole, as many as fit: the caller marks only the
    first ``turns_included`` as summarised, and ``dropped_turns`` wait for the next run.
    The previous summary is cut (oldest words first) only if not even one turn would fit.
    """
    if target_words < 1:
        raise ValueError("target_words must be at least 1")
    budget = TokenBudget.for_window(
        count_tokens=count_tokens,
        render_chat=render_chat,
        context_window=context_window,
        reserve_tokens=reserve_tokens,
    )
    previous = previous_summary.strip()

    def messages(summary: str, included: Sequence[ContextTurn]) -> ChatMessages:
        return [
            {"role": "system", "content": _SUMMARY_SYSTEM},
            {"role": "user", "content": _summary_request(summary, included, target_words)},
        ]

    _require_fit(budget, messages("", ()), "the summary instructions")
    summary = previous
    first_turn = turns[:1]
    if not budget.fits(messages(previous, first_turn)):
        if not budget.fits(messages("", first_turn)):
            raise PromptTooLargeError(
                f"turn {turns[0].number} alone is too long to summarise within "
                f"{budget.limit} tokens"
            )
        words = previous.split()
        kept = largest_fitting(
            len(words), lambda n: budget.fits(messages(_tail(previous, n), first_turn))
        )
        summary = _tail(previous, kept)
        log.warning("summary prompt: previous summary cut to its last %d words", kept)
    count = largest_fitting(len(turns), lambda n: budget.fits(messages(summary, turns[:n])))
    text, used = budget.measure(messages(summary, turns[:count]))
    return RenderedPrompt(
        text=text,
        used_tokens=used,
        turns_included=count,
        lore_included=(),
        dropped_turns=len(turns) - count,
        summary_truncated=summary != previous,
    )


_SUMMARY_SYSTEM = (
    "You keep the running summary of a story that several people write together. "
    "You write clear, concise prose summaries and nothing else."
)


def _summary_request(summary: str, turns: Sequence[ContextTurn], target_words: int) -> str:
    sections = [f"Summary so far:\n{summary or '(nothing yet)'}"]
    if turns:
        sections.append(f"New passages:\n{_transcript(turns)}")
    sections.append(
        "Rewrite the summary so that it also covers the new passages, in at most "
        f"{target_words} words. Write in the past tense, as plain prose. Keep the names "
        "of characters and places and every unresolved thread; leave out minor details. "
        "Reply with the summary only."
    )
    return "\n\n".join(sections)


def _narrator_request(context: StoryContext, parts: _NarratorParts) -> str:
    sections: list[str] = []
    if parts.summary:
        sections.append(f"Earlier: {parts.summary}")
    if parts.lore:
        entries = "\n".join(f"- {_one_line(e.name)}: {e.text.strip()}" for e in parts.lore)
        sections.append(f"Lore:\n{entries}")
    if parts.turns:
        sections.append(f"Recent turns:\n{_transcript(parts.turns)}")
    if parts.authors_note:
        sections.append(f"(Guidance for the next passage: {parts.authors_note})")
    sections.append(_continue_instruction(context))
    return "\n\n".join(sections)


def _continue_instruction(context: StoryContext) -> str:
    starting = not context.recent_turns and not context.summary.strip()
    if starting:
        verb = "Write the opening passage of this story, setting the first scene"
    else:
        verb = "Write the next passage, continuing straight from the last paragraph"
    next_player = _one_line(context.next_player or "")
    if next_player:
        return f"{verb}. End where {next_player} can act."
    return f"{verb}. End where the players can act."


def _players_rule(player_names: Sequence[str]) -> str:
    names = [name for name in (_one_line(n) for n in player_names) if name]
    if not names:
        return "Never decide what the players' characters do, say or think."
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"The players are {listed}: never decide what they do, say or think."


def _transcript(turns: Sequence[ContextTurn]) -> str:
    return "\n\n".join(
        f"{speaker_label(t.author, is_narrator=t.is_narrator, narrator_label=NARRATOR_LABEL)}: "
        f"{t.text.strip()}"
        for t in turns
    )


def _require_fit(budget: TokenBudget, messages: ChatMessages, what: str) -> None:
    _, used = budget.measure(messages)
    if used > budget.limit:
        raise PromptTooLargeError(
            f"{what} alone need {used} tokens but only {budget.limit} are available "
            "(context window minus the tokens reserved for the reply); shorten the genre "
            "instructions or premise, lower max_new_tokens, or use a model with a larger window"
        )


def _newest(turns: tuple[ContextTurn, ...], count: int) -> tuple[ContextTurn, ...]:
    return turns[len(turns) - count :]


def _tail(text: str, word_count: int) -> str:
    """Return the last ``word_count`` words of ``text``, marked as cut when shortened."""
    words = text.split()
    if word_count >= len(words):
        return text
    if word_count <= 0:
        return ""
    return _ELLIPSIS + " ".join(words[-word_count:])


def _one_line(text: str) -> str:
    return " ".join(text.split())
