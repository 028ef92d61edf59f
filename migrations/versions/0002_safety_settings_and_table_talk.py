"""safety settings and table talk

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:18:13.392378
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RATING = sa.Enum(
    "everyone", "teen", "mature", name="content_rating", native_enum=False, length=20
)


def upgrade() -> None:
    op.create_table(
        "channel_settings",
        sa.Column("channel_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("content_rating", _RATING, nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_channel_settings")),
    )
    with op.batch_alter_table("channel_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_channel_settings_guild_id"), ["guild_id"], unique=False
        )

    op.create_table(
        "table_talk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("after_turn", sa.Integer(), nullable=False),
        sa.Column("discord_message_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["story_sessions.id"],
            name=op.f("fk_table_talk_session_id_story_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_table_talk")),
    )
    with op.batch_alter_table("table_talk", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_table_talk_session_id"), ["session_id"], unique=False)

    # Existing servers get the defaults the models give new ones.
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("content_rating", _RATING, nullable=False, server_default="everyone")
        )
        batch_op.add_column(
            sa.Column("blocked_words", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(
            sa.Column("narrator_regenerations", sa.Integer(), nullable=False, server_default="2")
        )
    with op.batch_alter_table("story_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("age_restricted", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("story_sessions", schema=None) as batch_op:
        batch_op.drop_column("age_restricted")
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.drop_column("narrator_regenerations")
        batch_op.drop_column("blocked_words")
        batch_op.drop_column("content_rating")

    with op.batch_alter_table("table_talk", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_table_talk_session_id"))
    op.drop_table("table_talk")

    with op.batch_alter_table("channel_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_settings_guild_id"))
    op.drop_table("channel_settings")
