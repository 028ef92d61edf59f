"""`/storyconfig …`: the server's story rules and safety settings, for moderators.

Every reading and change goes through GuildConfigService or ModerationService, which
check the caller's powers (Manage Server or the configured moderator role) and the bounds.
The group declares no default member permissions: Discord would otherwise hide it from
members who moderate through the configured role rather than Manage Server.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.actions import guild_id_of
from bot.discord.actors import actor_from_user
from bot.discord.choices import GENRE_CHOICES
from bot.discord.formatting import audit_lines, config_embed, describe_settings, plain
from bot.discord.replies import reply
from engine.errors import InvalidSetting
from engine.protocol.bounds import field_bounds
from engine.protocol.sampling import SamplingSettings
from engine.rules import ContentRating, NarratorChoice
from engine.rules.guild_config import GuildConfig

if TYPE_CHECKING:
    from bot.discord.app import TaleweaverBot

log = logging.getLogger(__name__)

MIN_TURN_LOW, MIN_TURN_HIGH = field_bounds(GuildConfig, "min_turn_chars")
MAX_TURN_LOW, MAX_TURN_HIGH = field_bounds(GuildConfig, "max_turn_chars")
AWAY_LOW, AWAY_HIGH = field_bounds(GuildConfig, "max_consecutive_timeouts")
# The amount is counted in a unit of the moderator's choice; no unit is smaller than a
# second, so no valid timeout has a larger amount than its bound in seconds.
TIMEOUT_HIGH = field_bounds(GuildConfig, "turn_timeout_seconds")[1]
# Discord offers the bounds the model worker accepts; the engine checks them again.
TEMPERATURE = field_bounds(SamplingSettings, "temperature")
TOP_P = field_bounds(SamplingSettings, "top_p")
TOP_K = field_bounds(SamplingSettings, "top_k")
REPETITION = field_bounds(SamplingSettings, "repetition_penalty")
MAX_TOKENS = field_bounds(SamplingSettings, "max_new_tokens")
INSTRUCTIONS_LIMIT = GuildConfig.model_fields["custom_genre_instructions"].metadata[0].max_length

CADENCE_CHOICES = [
    app_commands.Choice(name="After every turn", value="every_turn"),
    app_commands.Choice(name="After every round", value="every_round"),
    app_commands.Choice(name="Only when asked (/story continue)", value="on_demand"),
]
TIME_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
UNIT_CHOICES = [app_commands.Choice(name=unit, value=unit) for unit in TIME_UNITS]
RATING_CHOICES = [
    app_commands.Choice(name="Everyone (default)", value="everyone"),
    app_commands.Choice(name="Teen", value="teen"),
    app_commands.Choice(name="Mature (age-restricted channels only)", value="mature"),
]
CHANNEL_RATING_CHOICES = [
    *RATING_CHOICES,
    app_commands.Choice(name="Follow the server's rating", value="server"),
]
REGENERATIONS_LOW, REGENERATIONS_HIGH = field_bounds(GuildConfig, "narrator_regenerations")
VOTE_LOW, VOTE_HIGH = field_bounds(GuildConfig, "vote_seconds")
CHOICE_CHOICES = [
    app_commands.Choice(name="The narrator's best candidate (default)", value="best"),
    app_commands.Choice(name="Players vote among the best 2-3 candidates", value="vote"),
]
REPEATS_LOW, REPEATS_HIGH = field_bounds(GuildConfig, "max_repeated_characters")
WORD_REPEATS_LOW, WORD_REPEATS_HIGH = field_bounds(GuildConfig, "max_repeated_words")
EMOJI_LOW, EMOJI_HIGH = field_bounds(GuildConfig, "max_emoji")
MARKS_LOW, MARKS_HIGH = field_bounds(GuildConfig, "max_combining_marks")
CLEAR_CHOICES = [
    app_commands.Choice(name="moderator role", value="moderator"),
    app_commands.Choice(name="starter role", value="starter"),
    app_commands.Choice(name="both", value="both"),
]


@app_commands.guild_only()
class StoryConfigCog(
    commands.GroupCog,
    group_name="storyconfig",
    group_description="Story rules for this server (moderators)",
):
    """Moderator commands that read and change the server's story configuration."""

    def __init__(self, bot: TaleweaverBot) -> None:
        self.bot = bot
        super().__init__()

    async def _update(self, interaction: discord.Interaction[Any], **changes: Any) -> None:
        guild_id = guild_id_of(interaction)
        config = await self.bot.runtime.configs.update(
            guild_id, actor_from_user(interaction.user), **changes
        )
        await reply(
            interaction,
            "✅ Saved.\n" + describe_settings(config, list(changes)),
            ephemeral=True,
        )

    async def _config(self, interaction: discord.Interaction[Any]) -> GuildConfig:
        guild_id = guild_id_of(interaction)
        return await self.bot.runtime.configs.get_for_moderator(
            guild_id, actor_from_user(interaction.user)
        )

    @app_commands.command(name="show", description="Show every story setting of this server")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        """Show the effective configuration (to moderators)."""
        config = await self._config(interaction)
        await reply(interaction, embed=config_embed(config), ephemeral=True)

    @app_commands.command(name="genre", description="Set the default genre for new stories")
    @app_commands.describe(
        genre="Genre preselected by /story start",
        instructions="Narrator instructions for the Custom genre",
    )
    @app_commands.choices(genre=GENRE_CHOICES)
    async def genre(
        self,
        interaction: discord.Interaction[Any],
        genre: app_commands.Choice[str],
        instructions: app_commands.Range[str, 1, INSTRUCTIONS_LIMIT] | None = None,
    ) -> None:
        """Set the default genre (and the custom genre's instructions)."""
        changes: dict[str, Any] = {"default_genre": genre.value}
        if instructions is not None:
            changes["custom_genre_instructions"] = instructions.strip()
        await self._update(interaction, **changes)

    @app_commands.command(name="cadence", description="Set when the narrator speaks")
    @app_commands.describe(cadence="After every turn, after each round, or only on request")
    @app_commands.choices(cadence=CADENCE_CHOICES)
    async def cadence(
        self, interaction: discord.Interaction[Any], cadence: app_commands.Choice[str]
    ) -> None:
        """Set the narrator's cadence."""
        await self._update(interaction, narrator_cadence=cadence.value)

    @app_commands.command(name="narrator", description="Set who picks the narrator's passage")
    @app_commands.describe(
        choice="The narrator's best candidate, or a vote of the players among the best ones",
        vote_seconds=f"How long a vote stays open, in seconds ({VOTE_LOW} to {VOTE_HIGH})",
    )
    @app_commands.choices(choice=CHOICE_CHOICES)
    async def narrator(
        self,
        interaction: discord.Interaction[Any],
        choice: app_commands.Choice[str],
        vote_seconds: app_commands.Range[int, VOTE_LOW, VOTE_HIGH] | None = None,
    ) -> None:
        """Set how the narrator's passage is chosen (and how long a vote lasts)."""
        changes: dict[str, Any] = {"narrator_choice": NarratorChoice(choice.value)}
        if vote_seconds is not None:
            changes["vote_seconds"] = vote_seconds
        await self._update(interaction, **changes)

    @app_commands.command(name="timeout", description="Set how long a player has for a turn")
    @app_commands.describe(
        amount="How long, in the chosen unit (30 seconds to 7 days)",
        unit="The unit of the amount (default: minutes)",
        away_after="Timeouts in a row before a player is marked away",
    )
    @app_commands.choices(unit=UNIT_CHOICES)
    async def timeout(
        self,
        interaction: discord.Interaction[Any],
        amount: app_commands.Range[int, 1, TIMEOUT_HIGH],
        unit: app_commands.Choice[str] | None = None,
        away_after: app_commands.Range[int, AWAY_LOW, AWAY_HIGH] | None = None,
    ) -> None:
        """Set the turn timeout (and how many timeouts mark a player away)."""
        factor = TIME_UNITS[unit.value if unit is not None else "minutes"]
        changes: dict[str, Any] = {"turn_timeout_seconds": amount * factor}
        if away_after is not None:
            changes["max_consecutive_timeouts"] = away_after
        await self._update(interaction, **changes)

    @app_commands.command(
        name="turn-length", description="Set the shortest and longest accepted turn"
    )
    @app_commands.describe(
        minimum="Fewest characters in a turn", maximum="Most characters in a turn"
    )
    async def turn_length(
        self,
        interaction: discord.Interaction[Any],
        minimum: app_commands.Range[int, MIN_TURN_LOW, MIN_TURN_HIGH],
        maximum: app_commands.Range[int, MAX_TURN_LOW, MAX_TURN_HIGH],
    ) -> None:
        """Set the turn length limits."""
        await self._update(interaction, min_turn_chars=minimum, max_turn_chars=maximum)

    @app_commands.command(name="sampling", description="Tune how the narrator writes")
    @app_commands.describe(
        temperature="Randomness: lower is steadier, higher is wilder",
        top_p="Sample from the likeliest tokens up to this total probability",
        top_k="Sample only from the k likeliest tokens (0: no limit)",
        repetition_penalty="Discourage repeating words (1: off)",
        max_new_tokens="Longest narrator passage, in tokens",
        reset="Forget all overrides and use the genre's defaults (applied first)",
    )
    async def sampling(
        self,
        interaction: discord.Interaction[Any],
        temperature: app_commands.Range[float, TEMPERATURE[0], TEMPERATURE[1]] | None = None,
        top_p: app_commands.Range[float, TOP_P[0], TOP_P[1]] | None = None,
        top_k: app_commands.Range[int, TOP_K[0], TOP_K[1]] | None = None,
        repetition_penalty: app_commands.Range[float, REPETITION[0], REPETITION[1]] | None = None,
        max_new_tokens: app_commands.Range[int, MAX_TOKENS[0], MAX_TOKENS[1]] | None = None,
        reset: bool = False,
    ) -> None:
        """Override the genre's sampling settings for this server."""
        given = {
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "repetition_penalty": repetition_penalty,
            "max_new_tokens": max_new_tokens,
        }
        overrides = {name: value for name, value in given.items() if value is not None}
        if not overrides and not reset:
            raise InvalidSetting(
                "Give at least one setting to change, or `reset` to use the genre's defaults."
            )
        current = await self.bot.runtime.configs.get(guild_id_of(interaction))
        sampling = {} if reset else dict(current.sampling)
        sampling.update(overrides)
        await self._update(interaction, sampling=sampling)

    @app_commands.command(name="roles", description="Set the moderator and story-starter roles")
    @app_commands.describe(
        moderator="Members with this role get moderator powers over stories",
        starter="Only this role (and moderators) may start stories",
        clear="Remove a role setting",
    )
    @app_commands.choices(clear=CLEAR_CHOICES)
    async def roles(
        self,
        interaction: discord.Interaction[Any],
        moderator: discord.Role | None = None,
        starter: discord.Role | None = None,
        clear: app_commands.Choice[str] | None = None,
    ) -> None:
        """Set or clear the moderator and starter roles."""
        changes: dict[str, Any] = {}
        if clear is not None and clear.value in ("moderator", "both"):
            changes["moderator_role_id"] = None
        if clear is not None and clear.value in ("starter", "both"):
            changes["starter_role_id"] = None
        if moderator is not None:
            if moderator.is_default():
                raise InvalidSetting("Choose a specific moderator role, not @everyone.")
            changes["moderator_role_id"] = moderator.id
        if starter is not None:
            # @everyone as the starter role means everybody may start: no restriction.
            changes["starter_role_id"] = None if starter.is_default() else starter.id
        if not changes:
            raise InvalidSetting("Give a role to set, or `clear` to remove one.")
        await self._update(interaction, **changes)

    @app_commands.command(name="threads", description="Start each new story in its own thread")
    @app_commands.describe(enabled="Whether /story start opens a thread by default")
    async def threads(self, interaction: discord.Interaction[Any], enabled: bool) -> None:
        """Set whether stories start in threads."""
        await self._update(interaction, prefer_threads=enabled)

    # Safety ------------------------------------------------------------------------------------
    blocked = app_commands.Group(
        name="blocked", description="Words and phrases refused in this server's stories"
    )

    @app_commands.command(name="rating", description="Set how explicit stories may be")
    @app_commands.describe(
        rating="everyone, teen, or mature (mature applies only in age-restricted channels)",
        narrator_retries="Narrator retries after a filtered passage before a neutral line",
    )
    @app_commands.choices(rating=RATING_CHOICES)
    async def rating(
        self,
        interaction: discord.Interaction[Any],
        rating: app_commands.Choice[str],
        narrator_retries: app_commands.Range[int, REGENERATIONS_LOW, REGENERATIONS_HIGH]
        | None = None,
    ) -> None:
        """Set the server's content rating."""
        changes: dict[str, Any] = {"content_rating": ContentRating(rating.value)}
        if narrator_retries is not None:
            changes["narrator_regenerations"] = narrator_retries
        await self._update(interaction, **changes)

    @app_commands.command(
        name="flood", description="Set how much repetition, emoji and zalgo a message may have"
    )
    @app_commands.describe(
        characters="Most times one character (or a group such as 'ha') may repeat in a row",
        words="Most times one word may repeat in a row",
        emoji="Most emoji in one message",
        marks="Most accents or combining marks on one letter (zalgo text)",
    )
    async def flood(
        self,
        interaction: discord.Interaction[Any],
        characters: app_commands.Range[int, REPEATS_LOW, REPEATS_HIGH] | None = None,
        words: app_commands.Range[int, WORD_REPEATS_LOW, WORD_REPEATS_HIGH] | None = None,
        emoji: app_commands.Range[int, EMOJI_LOW, EMOJI_HIGH] | None = None,
        marks: app_commands.Range[int, MARKS_LOW, MARKS_HIGH] | None = None,
    ) -> None:
        """Set the flood limits; with no option, show the current ones."""
        options = {
            "max_repeated_characters": characters,
            "max_repeated_words": words,
            "max_emoji": emoji,
            "max_combining_marks": marks,
        }
        changes = {name: value for name, value in options.items() if value is not None}
        if not changes:
            config = await self._config(interaction)
            await reply(
                interaction,
                "Flood limits (give an option to change one):\n"
                + describe_settings(config, list(options)),
                ephemeral=True,
            )
            return
        await self._update(interaction, **changes)

    @app_commands.command(
        name="channel-rating", description="Give this channel its own content rating"
    )
    @app_commands.describe(rating="The rating here, or follow the server's")
    @app_commands.choices(rating=CHANNEL_RATING_CHOICES)
    async def channel_rating(
        self, interaction: discord.Interaction[Any], rating: app_commands.Choice[str]
    ) -> None:
        """Override the content rating of the channel the command is used in."""
        guild_id, channel = guild_id_of(interaction), interaction.channel
        assert channel is not None
        nsfw = getattr(channel, "is_nsfw", None)
        chosen = None if rating.value == "server" else ContentRating(rating.value)
        await self.bot.runtime.moderation.set_channel_rating(
            guild_id,
            channel.id,
            actor_from_user(interaction.user),
            chosen,
            age_restricted=bool(nsfw()) if callable(nsfw) else False,
        )
        what = "the server's rating" if chosen is None else f"`{chosen.value}`"
        await reply(interaction, f"✅ Stories in this channel now follow {what}.", ephemeral=True)

    @blocked.command(name="add", description="Refuse a word or phrase (comma-separated list)")
    @app_commands.describe(words="Words or phrases, separated by commas; end with * for prefixes")
    async def blocked_add(
        self, interaction: discord.Interaction[Any], words: app_commands.Range[str, 1, 1000]
    ) -> None:
        """Add blocked words."""
        guild_id = guild_id_of(interaction)
        listed = await self.bot.runtime.moderation.add_blocked_words(
            guild_id, actor_from_user(interaction.user), _split_words(words)
        )
        await reply(interaction, f"✅ {len(listed)} blocked entries now.", ephemeral=True)

    @blocked.command(name="remove", description="Allow a blocked word or phrase again")
    @app_commands.describe(words="Words or phrases, separated by commas")
    async def blocked_remove(
        self, interaction: discord.Interaction[Any], words: app_commands.Range[str, 1, 1000]
    ) -> None:
        """Remove blocked words."""
        guild_id = guild_id_of(interaction)
        listed = await self.bot.runtime.moderation.remove_blocked_words(
            guild_id, actor_from_user(interaction.user), _split_words(words)
        )
        await reply(interaction, f"✅ {len(listed)} blocked entries now.", ephemeral=True)

    @blocked.command(name="list", description="Show this server's own blocked words")
    async def blocked_list(self, interaction: discord.Interaction[Any]) -> None:
        """List the server's blocked words (only the caller sees them)."""
        guild_id = guild_id_of(interaction)
        listed = await self.bot.runtime.moderation.blocked_words(
            guild_id, actor_from_user(interaction.user)
        )
        text = ", ".join(f"`{plain(w)}`" for w in listed) if listed else "No blocked words yet."
        await reply(interaction, text[:1900], ephemeral=True)

    @app_commands.command(name="audit", description="Show the latest filter decisions")
    @app_commands.describe(entries="How many entries to show (newest first)")
    async def audit(
        self, interaction: discord.Interaction[Any], entries: app_commands.Range[int, 1, 50] = 15
    ) -> None:
        """Show recent audit entries to the moderator who asks (and nobody else)."""
        guild_id = guild_id_of(interaction)
        found = await self.bot.runtime.moderation.audit(
            guild_id, actor_from_user(interaction.user), limit=entries
        )
        await reply(interaction, audit_lines(found), ephemeral=True)


def _split_words(words: str) -> list[str]:
    return [w for w in (part.strip() for part in words.split(",")) if w]
