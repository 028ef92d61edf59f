"""why a story was paused for the host: a notice shown at their next command

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("story_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host_notice", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("story_sessions", schema=None) as batch_op:
        batch_op.drop_column("host_notice")
