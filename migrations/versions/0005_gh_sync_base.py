"""Projects remember their sync base's version and what Sorya last saw of GitHub (GitHub both ways)

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
from sqlalchemy.dialects import mysql

revision = '0005_gh'
down_revision = '0005_edits'  # chained after the workspace and edits migrations
branch_labels = None
depends_on = None

DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb')


def upgrade():
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('sync_snapshot_id', sa.BigInteger(), nullable=True))
    op.create_table(
        'project_syncs',
        sa.Column('project_id', sa.BigInteger(), sa.ForeignKey('projects.id', ondelete='CASCADE'),
                  primary_key=True, autoincrement=False),
        sa.Column('etag', sa.String(200), nullable=True),
        sa.Column('checked_at', DATETIME, nullable=True),
        sa.Column('remote_head', sa.String(40), nullable=True),
        sa.Column('ahead_by', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('rewritten', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('conflicts', sa.JSON(), nullable=False),
        sa.Column('pull_started_at', DATETIME, nullable=True),
        mysql_engine='InnoDB', mysql_charset='utf8mb4', mysql_collate='utf8mb4_bin',
    )
    with op.batch_alter_table('pushes') as batch:
        batch.add_column(sa.Column('options', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('pull_request', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('pushes') as batch:
        batch.drop_column('pull_request')
        batch.drop_column('options')
    op.drop_table('project_syncs')
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('sync_snapshot_id')
