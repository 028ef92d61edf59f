"""flood limits

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 20:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Existing servers get the defaults the models give new ones.
_LIMITS = (
    ("max_repeated_characters", "12"),
    ("max_repeated_words", "5"),
    ("max_emoji", "6"),
    ("max_combining_marks", "4"),
)


def upgrade() -> None:
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        for name, default in _LIMITS:
            batch_op.add_column(
                sa.Column(name, sa.Integer(), nullable=False, server_default=default)
            )


def downgrade() -> None:
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        for name, _ in reversed(_LIMITS):
            batch_op.drop_column(name)
