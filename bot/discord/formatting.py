"""Messages and embeds the bot shows, kept within Discord's size limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import discord

from engine.rules.genres import get_preset
from engine.rules.guild_config import GuildConfig
from engine.rules.moderation import AuditEntry
from engine.story.passage_votes import candidate_letter
from engine.story.views import (
    LoreView,
    ParticipantView,
    PassageVoteView,
    Recap,
    SessionView,
    TurnView,
    VoteClosed,
)

CONTENT_LIMIT = 2000
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELDS_LIMIT = 25
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
SELECT_LABEL_LIMIT = 100
CHOICE_NAME_LIMIT = 100

ELLIPSIS = "…"
STORY_COLOUR = discord.Colour.dark_teal()

# Every message goes out with this unless it deliberately pings one player.
NO_MENTIONS = discord.AllowedMentions.none()


def mention_only(user_id: int) -> discord.AllowedMentions:
    """Return allowed mentions that ping exactly one user and nobody else."""
    return discord.AllowedMentions(
        everyone=False, roles=False, replied_user=False, users=[discord.Object(id=user_id)]
    )


def truncate(text: str, limit: int) -> str:
    """Return TEXT cut to at most LIMIT characters, ending in an ellipsis when cut."""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return text[:limit]
    head = text[: limit - len(ELLIPSIS)]
    # Prefer ending at a word boundary when one is reasonably close.
    space = head.rfind(" ")
    if space >= len(head) * 3 // 4:
        head = head[:space]
    return head.rstrip() + ELLIPSIS


def plain(text: str) -> str:
    """Escape Markdown and mentions in user-provided text shown inside our own messages."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def discord_timestamp(moment: datetime, style: str = "R") -> str:
    """Return Discord's timestamp markup, shown in each reader's own time zone."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def vote_counts(counts: Sequence[int]) -> str:
    """Describe a vote's counts per candidate: "A 1 · B 2 · C 0"."""
    return " · ".join(f"{candidate_letter(i)} {count}" for i, count in enumerate(counts))


def vote_message(vote: PassageVoteView) -> tuple[str, list[discord.Embed]]:
    """Return the content and one embed per candidate of a vote on the narrator's passage."""
    content = (
        "🗳️ The narrator offers "
        f"{len(vote.candidates)} passages. Vote for the one the story keeps; the vote "
        f"closes {discord_timestamp(vote.closes_at)} and a tie goes to the narrator's pick (A)."
    )
    # Each embed's title is one letter: the descriptions share the rest of the total.
    limit = min(EMBED_DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT // len(vote.candidates) - 1)
    embeds = [
        discord.Embed(
            title=candidate_letter(i), description=truncate(text, limit), colour=STORY_COLOUR
        )
        for i, text in enumerate(vote.candidates)
    ]
    return content, embeds


def vote_result(closed: VoteClosed) -> str:
    """Say which candidate the players chose, for the line before the next turn's ping."""
    votes = sum(closed.counts)
    if votes == 0:
        return f"🗳️ Nobody voted, so the narrator's pick ({candidate_letter(0)}) stands. "
    return (
        f"🗳️ The players chose passage {candidate_letter(closed.winner)} "
        f"({vote_counts(closed.counts)}). "
    )


def format_duration(seconds: int) -> str:
    """Return a short human form of a duration: 90 s, 45 min, 2 h 30 min, 1 day."""
    if seconds < 120:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 24 or hours % 24 or minutes:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days = hours // 24
    return f"{days} day" + ("s" if days != 1 else "")


def genre_name(key: str) -> str:
    """Return a genre's display name, or the key itself for an unknown one."""
    try:
        return get_preset(key).display_name
    except Exception:
        return key


@dataclass(frozen=True)
class Ping:
    """A message that may ping exactly the users in ALLOWED."""

    content: str
    allowed_mentions: discord.AllowedMentions


def write_hint(*, via_messages: bool) -> str:
    """Say how a player writes their turn on this bot."""
    if via_messages:
        return "Write it here (or use `/story write`)"
    return "Write it with `/story write`"


def turn_prompt(view: SessionView, *, via_messages: bool, lead: str = "") -> Ping | None:
    """Return the "your turn" message pinging only the current player, or None."""
    player = view.current_player
    if player is None or view.narrator_pending or view.voting or view.status != "active":
        return None
    deadline = ""
    if view.turn_deadline is not None:
        deadline = f"; time runs out {discord_timestamp(view.turn_deadline)}"
    text = f"✒️ <@{player.user_id}>, it's your turn. {write_hint(via_messages=via_messages)}"
    text = f"{lead}{text}{deadline}."
    return Ping(truncate(text, CONTENT_LIMIT), mention_only(player.user_id))


def whose_turn(view: SessionView) -> str:
    """Describe who acts next, without pinging anyone."""
    if view.status == "lobby":
        return "Nobody yet: the host starts the story with `/story begin`."
    if view.status == "paused":
        return "Nobody: the story is paused (`/story resume`)."
    if view.status == "ended":
        return "Nobody: the story has ended."
    if view.narrator_pending:
        return "The narrator is writing."
    if view.voting and view.vote_closes_at is not None:
        closes = discord_timestamp(view.vote_closes_at)
        return f"The players are voting on the narrator's passage (the vote closes {closes})."
    if view.current_player is None:
        return "Nobody: everyone has left; join to continue."
    return f"<@{view.current_player.user_id}>"


def _rotation_lines(view: SessionView) -> list[str]:
    lines = []
    current = view.current_player.id if view.current_player else None
    for seat, player in enumerate(view.rotation, start=1):
        marker = "▶" if player.id == current else f"{seat}."
        host = " (host)" if player.user_id == view.host_id else ""
        lines.append(f"{marker} {plain(player.display_name)}{host}")
    return lines


def _join_limited(lines: Sequence[str], limit: int, *, empty: str = "—") -> str:
    """Join lines with newlines; past LIMIT characters, end with a count of those left out."""
    if not lines:
        return empty
    out: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        last = index == len(lines) - 1
        more = f"… and {len(lines) - index} more"
        # Always keep room for the "and N more" line unless this is the last line.
        reserve = 0 if last else len(more) + 1
        separator = 1 if out else 0
        if not out:
            line = truncate(line, limit - reserve)
        if used + separator + len(line) + reserve > limit:
            out.append(more)
            break
        out.append(line)
        used += separator + len(line)
    return "\n".join(out)


class EmbedBudget:
    """Build an embed that never exceeds Discord's per-part and total limits."""

    def __init__(self, title: str, description: str = "", *, colour: Any = STORY_COLOUR) -> None:
        self.embed = discord.Embed(
            title=truncate(title, EMBED_TITLE_LIMIT),
            description=truncate(description, EMBED_DESCRIPTION_LIMIT) or None,
            colour=colour,
        )
        self.dropped = 0

    def remaining(self) -> int:
        """Return how many characters the embed may still take."""
        return EMBED_TOTAL_LIMIT - len(self.embed)

    def add_field(self, name: str, value: str, *, inline: bool = False) -> bool:
        """Add a field, shortened to fit; return False (and count it) when it cannot fit."""
        name = truncate(name, EMBED_FIELD_NAME_LIMIT) or "\u200b"
        # Keep room for a footer saying how much was left out.
        room = self.remaining() - len(name) - 40
        if len(self.embed.fields) >= EMBED_FIELDS_LIMIT or room < 20:
            self.dropped += 1
            return False
        value = truncate(value or "—", min(EMBED_FIELD_VALUE_LIMIT, room))
        self.embed.add_field(name=name, value=value, inline=inline)
        return True

    def set_footer(self, text: str) -> None:
        """Set the footer, shortened to what is left of the budget."""
        room = min(EMBED_FOOTER_LIMIT, self.remaining() + len(self.embed.footer.text or ""))
        if room > 0:
            self.embed.set_footer(text=truncate(text, room))

    def finish(self, noun: str = "entries") -> discord.Embed:
        """Return the embed, with a footer counting anything that did not fit."""
        if self.dropped:
            self.set_footer(f"{self.dropped} more {noun} not shown.")
        return self.embed


def _status_word(view: SessionView) -> str:
    return {
        "lobby": "In the lobby",
        "active": "Under way",
        "paused": "Paused",
        "ended": "Ended",
    }.get(str(view.status), str(view.status))


def status_embed(view: SessionView) -> discord.Embed:
    """Describe a story: status, rotation, whose turn it is and the deadline."""
    budget = EmbedBudget(f"📖 {view.title}", truncate(plain(view.premise), 1000))
    budget.add_field("Status", _status_word(view), inline=True)
    budget.add_field("Genre", genre_name(view.genre), inline=True)
    budget.add_field("Turns written", str(view.turn_count), inline=True)
    budget.add_field("Whose turn", whose_turn(view), inline=True)
    if view.turn_deadline is not None and view.status == "active":
        deadline = view.turn_deadline
        budget.add_field(
            "Time runs out",
            f"{discord_timestamp(deadline)} ({discord_timestamp(deadline, 'f')})",
            inline=True,
        )
    budget.add_field("Host", f"<@{view.host_id}>", inline=True)
    budget.add_field(
        f"Rotation ({len(view.rotation)})",
        _join_limited(_rotation_lines(view), EMBED_FIELD_VALUE_LIMIT, empty="Nobody yet."),
    )
    away = [p for p in view.participants if p.status == "away"]
    if away:
        budget.add_field(
            "Away (join again to come back)",
            _join_limited([plain(p.display_name) for p in away], EMBED_FIELD_VALUE_LIMIT),
        )
    budget.set_footer(f"Story #{view.id}")
    return budget.finish("details")


def turn_line(turn: TurnView, limit: int) -> str:
    """Return one passage as a Markdown line: bold author, then the text."""
    author = "Narrator" if turn.is_narrator else plain(turn.author_name)
    return truncate(f"**{author}:** {turn.text}", limit)


def recap_embed(recap: Recap, *, turn_limit: int = 700) -> discord.Embed:
    """Describe the summary so far and the latest passages, newest kept when space runs out."""
    view = recap.session
    parts: list[str] = []
    if recap.summary is not None and recap.summary.text:
        parts.append(f"*So far:* {truncate(recap.summary.text, 1500)}")
    budget = EMBED_DESCRIPTION_LIMIT - sum(len(p) + 2 for p in parts)
    lines: list[str] = []
    for turn in reversed(recap.recent_turns):
        line = turn_line(turn, turn_limit)
        if len(line) + 2 > budget:
            break
        lines.append(line)
        budget -= len(line) + 2
    parts.extend(reversed(lines))
    if not parts:
        parts.append("Nothing has been written yet.")
    embed = EmbedBudget(f"Recap: {view.title}", "\n\n".join(parts))
    embed.add_field("Whose turn", whose_turn(view), inline=True)
    embed.add_field("Status", _status_word(view), inline=True)
    return embed.finish()


def _setting_value(name: str, value: Any) -> str:
    if value is None:
        return "not set"
    if name.endswith("_role_id"):
        return f"<@&{value}>"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name == "turn_timeout_seconds":
        return f"{value} s ({format_duration(int(value))})"
    if name == "default_genre":
        return f"{genre_name(str(value))} (`{value}`)"
    if isinstance(value, list | tuple | set | frozenset):
        return f"{len(value)} entries" if value else "none"
    if isinstance(value, dict):
        if not value:
            return "the genre's defaults"
        return ", ".join(f"{k} = {v}" for k, v in sorted(value.items()))
    if isinstance(value, str) and not value:
        return "—"
    return plain(str(value))


def config_embed(config: GuildConfig, *, title: str = "Story settings") -> discord.Embed:
    """List every field of a server's effective configuration with its value."""
    budget = EmbedBudget(title)
    for name, info in type(config).model_fields.items():
        label = info.description or name.replace("_", " ")
        value = _setting_value(name, getattr(config, name))
        budget.add_field(truncate(label, EMBED_FIELD_NAME_LIMIT), f"`{name}`: {value}")
    return budget.finish("settings")


def describe_settings(config: GuildConfig, names: Sequence[str]) -> str:
    """Return one line per named setting with its (new) value."""
    lines = []
    for name in names:
        info = type(config).model_fields[name]
        label = info.description or name.replace("_", " ")
        lines.append(f"• {label}: {_setting_value(name, getattr(config, name))}")
    return truncate("\n".join(lines), CONTENT_LIMIT - 20)


def audit_lines(entries: Sequence[AuditEntry]) -> str:
    """Return audit entries as one line each, newest first, within one message."""
    if not entries:
        return "No filter decisions recorded yet."
    lines = []
    for entry in entries:
        who = f"<@{entry.user_id}>" if entry.user_id else "narrator"
        where = f"<#{entry.channel_id}>" if entry.channel_id else "-"
        when = f"<t:{int(entry.created_at.timestamp())}:R>"
        detail = plain(entry.detail.replace("\n", " "))[:160]
        lines.append(f"{when} {who} in {where}: **{entry.rule}** → {entry.action} — {detail}")
    return truncate("\n".join(lines), CONTENT_LIMIT - 20)


def lore_embed(title: str, entries: Sequence[LoreView]) -> discord.Embed:
    """List lore entries with their keywords, as many as Discord allows."""
    budget = EmbedBudget(
        f"Lore: {title}",
        "" if entries else "No lore yet. Add some with `/story lore add`.",
    )
    for entry in entries:
        keywords = ", ".join(entry.keywords)
        budget.add_field(entry.name, f"*{plain(keywords)}*\n{plain(entry.text)}")
    return budget.finish()


def participant_names(players: Sequence[ParticipantView]) -> str:
    """Return player names as an English list."""
    names = [plain(p.display_name) for p in players]
    if not names:
        return "nobody"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def version_label(index: int, text: str) -> str:
    """Return a select option label for an earlier version of a passage."""
    return truncate(f"{index + 1}. {' '.join(text.split())}", SELECT_LABEL_LIMIT)
