"""Turn a story's state into the narrator's prompt: context, lore, memory, rendering."""

from engine.prompt.budget import PromptTooLargeError
from engine.prompt.context import LoreEntryView, StoryContext, StoryContextFormatError, TurnView
from engine.prompt.lore import triggered_lore
from engine.prompt.memory import turns_to_summarise
from engine.prompt.render import (
    RenderedPrompt,
    narrator_system_message,
    render_narrator_prompt,
    render_summary_prompt,
)

__all__ = [
    "LoreEntryView",
    "PromptTooLargeError",
    "RenderedPrompt",
    "StoryContext",
    "StoryContextFormatError",
    "TurnView",
    "narrator_system_message",
    "render_narrator_prompt",
    "render_summary_prompt",
    "triggered_lore",
    "turns_to_summarise",
]
