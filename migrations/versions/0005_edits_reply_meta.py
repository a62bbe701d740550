"""Edits, not rewrites: what made up a reply's prompt, and where a project's current conversation starts

Revision ID: 0005_edits
Revises: 0005_wsv
Create Date: 2026-12-03

`chat_messages.prompt_parts` (JSON, nullable) holds what a reply's footer shows: the prompt's make-up at
send time (tokens of instructions, files, history, message). (A reply's edit errors live in
`chat_messages.meta`, added by 0005_wsv.) `projects.context_after_message_id`
marks a *New conversation*: the prompt carries only the project's messages after it. Both nullable, so
existing rows need nothing.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0005_edits'
down_revision = '0005_wsv'  # chained after wsv's, merged into this branch
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prompt_parts', sa.JSON(), nullable=True))
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('context_after_message_id', sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('context_after_message_id')
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_column('prompt_parts')
