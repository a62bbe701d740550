"""Replies remember how they became a version; projects say whether previews may load https: CDNs

Revision ID: 0005_wsv
Revises: 0004_ids_never_reused
Create Date: 2026-12-03

`chat_messages.meta`: JSON, NULL until a finished reply of a project has been versioned (then it records
the version's id, or why none was made). `projects.preview_allow_cdn`: on for every project (see
ARCHITECTURE.md: a preview runs in an opaque-origin sandbox that can reach nothing of Sorya's).
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0005_wsv'
down_revision = '0004_ids_never_reused'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('meta', sa.JSON(), nullable=True))
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preview_allow_cdn', sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade():
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('preview_allow_cdn')
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_column('meta')
