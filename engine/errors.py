"""The engine's one error family, in two roots.

``StoryError``: a player's request was refused; its message is fit to show that player.
``OperatorError``: the infrastructure failed (database, model, queue); its message tells
the person hosting the bot what to fix and is not a player's business.

This module imports nothing else of the project: the worker and the protocol use it.
"""

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


class AlreadyRecorded(InvalidState):
    """The message was stored already (a message read twice is kept once)."""


class TurnRejected(StoryError):
    """The turn's text breaks a rule (empty, too short, too long)."""


class ConcurrentChange(StoryError):
    """Another change to the same story won the race; try again."""


class InvalidSetting(StoryError):
    """A configuration value is out of bounds or malformed."""


class OperatorError(Exception):
    """The bot's own machinery failed; ``str(err)`` tells the operator what to fix."""


class StoryUnavailable(StoryError):
    """The story database did not answer (down, stalled or busy); nothing was saved.

    A player can only wait and try again, so it is a refusal to show them; what failed
    is logged for the operator where the error is raised.
    """

    def __init__(
        self,
        message: str = "The story database is unreachable; nothing was saved. "
        "Try again in a moment.",
    ) -> None:
        super().__init__(message)
