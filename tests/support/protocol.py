"""Hypothesis strategies for the protocol's values: contexts, sampling settings, requests."""

from hypothesis import strategies as st

from engine.protocol import (
    ContextTurn,
    LoreEntryView,
    NarrateRequest,
    SamplingSettings,
    StoryContext,
    SummariseRequest,
    field_bounds,
)

texts = st.text(max_size=40)
lore_entries = st.builds(
    LoreEntryView, name=texts, keywords=st.lists(texts, max_size=4).map(tuple), text=texts
)
turns = st.builds(
    ContextTurn,
    number=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    author=texts,
    is_narrator=st.booleans(),
    text=texts,
)
contexts = st.builds(
    StoryContext,
    title=texts,
    genre_key=texts,
    genre_instructions=texts,
    premise=texts,
    player_names=st.lists(texts, max_size=5).map(tuple),
    summary=texts,
    lore=st.lists(lore_entries, max_size=4).map(tuple),
    authors_note=texts,
    recent_turns=st.lists(turns, max_size=6).map(tuple),
    next_player=st.none() | texts,
)


def _setting(name: str) -> st.SearchStrategy[float] | st.SearchStrategy[int]:
    low, high = field_bounds(SamplingSettings, name)
    if SamplingSettings.model_fields[name].annotation is int:
        return st.integers(low, high)
    return st.floats(low, high, allow_nan=False)


samplings = st.fixed_dictionaries(
    {name: _setting(name) for name in SamplingSettings.model_fields}
).map(lambda values: SamplingSettings(**values))
narrate_requests = st.builds(
    NarrateRequest,
    context=contexts,
    sampling=samplings,
    banned_phrases=st.lists(texts, max_size=4).map(tuple),
)
summarise_requests = st.builds(
    SummariseRequest,
    previous_summary=texts,
    turns=st.lists(turns, max_size=6).map(tuple),
    sampling=samplings,
)
requests = narrate_requests | summarise_requests


def story_context(hero: str = "Ada") -> StoryContext:
    """Return a small, valid context whose only player is ``hero``."""
    return StoryContext(
        title=f"The Tale of {hero}",
        genre_key="fantasy",
        genre_instructions="Write with wonder.",
        premise="A lighthouse keeper finds a map.",
        player_names=(hero,),
        summary="",
        lore=(),
        authors_note="",
        recent_turns=(ContextTurn(1, hero, False, f"{hero} opens the door."),),
        next_player=hero,
    )


def narrate_request(hero: str = "Ada") -> NarrateRequest:
    """Return a narrate request for a story whose only player is ``hero``."""
    return NarrateRequest(story_context(hero), SamplingSettings())
