"""Who is asking: the identity and powers a front-end vouches for."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.safety.storable import without_unstorable

# The longest name a story keeps for a player (the participants' name column).
MAX_DISPLAY_NAME_CHARS = 100


@dataclass(frozen=True)
class Actor:
    """A user acting on a story, as identified by the front-end.

    The display name is cleaned, never refused: a player cannot always change the
    name Discord or a terminal gives them, so characters no database can store are
    removed, a name left blank becomes "Player <id>", and a long one is cut.
    """

    user_id: int
    display_name: str
    # Set by the front-end when the platform grants moderation (e.g. Manage Server).
    is_moderator: bool = False
    role_ids: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        name = without_unstorable(self.display_name)[:MAX_DISPLAY_NAME_CHARS]
        if not name.strip():
            name = f"Player {self.user_id}"
        if name != self.display_name:
            object.__setattr__(self, "display_name", name)
