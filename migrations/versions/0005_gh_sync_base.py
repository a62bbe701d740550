"""Projects remember their sync base's version (GitHub both ways)

`projects.repo_head_sha` already names the commit Sorya and GitHub last agreed on (pushed, or now
imported); `projects.sync_snapshot_id` names the version whose files equal that commit's tree, so an
import, a pull and a push all diff against the same base. No foreign key: a deleted version only makes
the next push fall back to the last push's version.

Revision ID: 0005_gh
Revises: 0004_ids_never_reused
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op

revision = '0005_gh'
down_revision = '0004_ids_never_reused'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('sync_snapshot_id', sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('sync_snapshot_id')
