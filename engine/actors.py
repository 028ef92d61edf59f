"""Who is asking: the identity and powers a front-end vouches for."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    """A user acting on a story, as identified by the front-end."""

    user_id: int
    display_name: str
    # Set by the front-end when the platform grants moderation (e.g. Manage Server).
    is_moderator: bool = False
    role_ids: frozenset[int] = field(default_factory=frozenset)
