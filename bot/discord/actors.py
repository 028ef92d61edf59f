"""Who is acting, as the engine sees it, built from a Discord user or member."""

from __future__ import annotations

import discord

from engine.actors import Actor


def actor_from_user(user: discord.Member | discord.User) -> Actor:
    """Return the Actor for a Discord user; members bring their roles and Manage Server power."""
    if isinstance(user, discord.Member):
        return Actor(
            user_id=user.id,
            display_name=user.display_name,
            # Administrators have every permission, so they count as moderators too.
            is_moderator=user.guild_permissions.manage_guild,
            role_ids=frozenset(role.id for role in user.roles),
        )
    return Actor(user_id=user.id, display_name=user.display_name)
