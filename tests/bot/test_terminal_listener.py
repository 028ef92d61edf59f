from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from bot.terminal import TerminalListener


def outcome(text: str, job_id: str = "job-1") -> Any:
    return SimpleNamespace(turn=SimpleNamespace(text=text, job_id=job_id))


async def test_off_a_terminal_each_passage_is_printed_once_in_its_final_form() -> None:
    out = io.StringIO()
    listener = TerminalListener(out, live=False)

    await listener.narration_progress(1, "job-1", "The lamp")
    await listener.narration_progress(1, "job-1", "The lamp flickered and")
    await listener.narration_stored(outcome("The gallery door slammed."))

    assert out.getvalue() == "\nNarrator: The gallery door slammed.\n\n"


async def test_on_a_terminal_the_streamed_text_is_replaced_by_a_different_final_passage() -> None:
    out = io.StringIO()
    listener = TerminalListener(out, live=True)

    await listener.narration_progress(1, "job-1", "The lamp")
    await listener.narration_progress(1, "job-1", "The lamp flickered and")
    await listener.narration_stored(outcome("The gallery door slammed."))

    written = out.getvalue()
    streamed, _, final = written.rpartition("\x1b[J")
    assert streamed == "\nNarrator: The lamp flickered and\r"
    assert final == "Narrator: The gallery door slammed.\n\n"


async def test_on_a_terminal_a_final_passage_equal_to_the_stream_is_not_repeated() -> None:
    out = io.StringIO()
    listener = TerminalListener(out, live=True)

    await listener.narration_progress(1, "job-1", "The lamp flickered.")
    await listener.narration_stored(outcome("The lamp flickered."))

    assert out.getvalue() == "\nNarrator: The lamp flickered.\n\n"
    assert out.getvalue().count("The lamp flickered.") == 1
