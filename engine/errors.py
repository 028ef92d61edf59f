"""Refusals the engine gives: each carries a message fit to show the user."""

from __future__ import annotations


class StoryError(Exception):
    """A request was refused; nothing was changed. ``str(err)`` is the user-facing reason."""


class SessionNotFound(StoryError):
    """No story matches the channel or id."""


class PermissionDenied(StoryError):
    """The user lacks the power for this action."""


class InvalidState(StoryError):
    """The story is not in a state that allows this action."""


class NotYourTurn(StoryError):
    """Someone other than the current player tried to write."""


class TurnRejected(StoryError):
    """The turn's text breaks a rule (empty, too short, too long)."""


class ConcurrentChange(StoryError):
    """Another change to the same story won the race; try again."""


class InvalidSetting(StoryError):
    """A configuration value is out of bounds or malformed."""
