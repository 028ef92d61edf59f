"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:28:11.785329
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "narrator_cadence",
            sa.Enum(
                "every_turn",
                "every_round",
                "on_demand",
                name="narrator_cadence",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("turn_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("max_consecutive_timeouts", sa.Integer(), nullable=False),
        sa.Column("min_turn_chars", sa.Integer(), nullable=False),
        sa.Column("max_turn_chars", sa.Integer(), nullable=False),
        sa.Column("moderator_role_id", sa.BigInteger(), nullable=True),
        sa.Column("starter_role_id", sa.BigInteger(), nullable=True),
        sa.Column("default_genre", sa.String(length=40), nullable=False),
        sa.Column("custom_genre_instructions", sa.Text(), nullable=False),
        sa.Column("prefer_threads", sa.Boolean(), nullable=False),
        sa.Column("sampling", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_guild_settings")),
    )
    op.create_table(
        "story_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("parent_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("genre", sa.String(length=40), nullable=False),
        sa.Column("premise", sa.Text(), nullable=False),
        sa.Column("authors_note", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "lobby",
                "active",
                "paused",
                "ended",
                name="session_status",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("host_id", sa.BigInteger(), nullable=False),
        sa.Column("current_participant_id", sa.Integer(), nullable=True),
        sa.Column("turn_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotation_step", sa.Integer(), nullable=False),
        sa.Column("turn_count", sa.Integer(), nullable=False),
        sa.Column("narrator_job_id", sa.String(length=64), nullable=True),
        sa.Column("narrator_retry_turn", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_sessions")),
    )
    with op.batch_alter_table("story_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_story_sessions_guild_id", ["guild_id"], unique=False)
        batch_op.create_index(
            "uq_story_sessions_open_channel",
            ["channel_id"],
            unique=True,
            sqlite_where=sa.text("status != 'ended'"),
            postgresql_where=sa.text("status != 'ended'"),
        )

    op.create_table(
        "lore_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["story_sessions.id"],
            name=op.f("fk_lore_entries_session_id_story_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lore_entries")),
        sa.UniqueConstraint("session_id", "name", name="uq_lore_entries_session_name"),
    )
    op.create_table(
        "moderation_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["story_sessions.id"],
            name=op.f("fk_moderation_events_session_id_story_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_events")),
    )
    with op.batch_alter_table("moderation_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_moderation_events_guild_created", ["guild_id", "created_at"], unique=False
        )

    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("join_order", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active", "away", "left", name="participant_status", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("consecutive_timeouts", sa.Integer(), nullable=False),
        sa.Column(
            "joined_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["story_sessions.id"],
            name=op.f("fk_participants_session_id_story_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participants")),
        sa.UniqueConstraint("session_id", "join_order", name="uq_participants_session_order"),
        sa.UniqueConstraint("session_id", "user_id", name="uq_participants_session_user"),
    )
    op.create_table(
        "skip_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("rotation_step", sa.Integer(), nullable=False),
        sa.Column("voter_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["story_sessions.id"],
            name=op.f("fk_skip_votes_session_id_story_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skip_votes")),
        sa.UniqueConstraint("session_id", "rotation_step", "voter_id", name="uq_skip_votes_ballot"),
    )
    op.create_table(
        "story_summaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("covers_through_turn", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["story_sessions.id"],
            name=op.f("fk_story_summaries_session_id_story_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_summaries")),
        sa.UniqueConstraint("job_id", name=op.f("uq_story_summaries_job_id")),
    )
    with op.batch_alter_table("story_summaries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_story_summaries_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "turns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("player", "narrator", name="turn_kind", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.BigInteger(), nullable=True),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("discord_message_id", sa.BigInteger(), nullable=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("rotation_before", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_turns_participant_id_participants"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["story_sessions.id"],
            name=op.f("fk_turns_session_id_story_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turns")),
        sa.UniqueConstraint("job_id", name=op.f("uq_turns_job_id")),
        sa.UniqueConstraint("session_id", "number", name="uq_turns_session_number"),
    )
    op.create_table(
        "turn_alternatives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["turns.id"],
            name=op.f("fk_turn_alternatives_turn_id_turns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turn_alternatives")),
    )
    with op.batch_alter_table("turn_alternatives", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_turn_alternatives_turn_id"), ["turn_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("turn_alternatives", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turn_alternatives_turn_id"))

    op.drop_table("turn_alternatives")
    op.drop_table("turns")
    with op.batch_alter_table("story_summaries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_story_summaries_session_id"))

    op.drop_table("story_summaries")
    op.drop_table("skip_votes")
    op.drop_table("participants")
    with op.batch_alter_table("moderation_events", schema=None) as batch_op:
        batch_op.drop_index("ix_moderation_events_guild_created")

    op.drop_table("moderation_events")
    op.drop_table("lore_entries")
    with op.batch_alter_table("story_sessions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_story_sessions_open_channel",
            sqlite_where=sa.text("status != 'ended'"),
            postgresql_where=sa.text("status != 'ended'"),
        )
        batch_op.drop_index("ix_story_sessions_guild_id")

    op.drop_table("story_sessions")
    op.drop_table("guild_settings")
