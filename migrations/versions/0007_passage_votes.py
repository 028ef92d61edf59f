"""players vote among the narrator's best candidates: server settings, the open vote, ballots

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing servers keep the reranker's pick, as before.
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "narrator_choice", sa.String(length=20), nullable=False, server_default="best"
            )
        )
        batch_op.add_column(
            sa.Column("vote_seconds", sa.Integer(), nullable=False, server_default="45")
        )
    with op.batch_alter_table("story_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vote_turn", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("vote_closes_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "passage_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("turn_number", sa.Integer(), nullable=False),
        sa.Column("voter_id", sa.BigInteger(), nullable=False),
        sa.Column("choice", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["story_sessions.id"],
            name=op.f("fk_passage_votes_session_id_story_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passage_votes")),
        sa.UniqueConstraint(
            "session_id", "turn_number", "voter_id", name="uq_passage_votes_ballot"
        ),
    )


def downgrade() -> None:
    op.drop_table("passage_votes")
    with op.batch_alter_table("story_sessions", schema=None) as batch_op:
        batch_op.drop_column("vote_closes_at")
        batch_op.drop_column("vote_turn")
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.drop_column("vote_seconds")
        batch_op.drop_column("narrator_choice")
