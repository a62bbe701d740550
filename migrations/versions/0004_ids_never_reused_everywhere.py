"""Ids of projects, snapshots, chat messages and pushes never reused on SQLite

Their ids leave the server too (URLs, API answers, `Last-Event-ID` reattachment, reply streams in Redis
keyed by message id): without AUTOINCREMENT SQLite gives the next row the highest id in use plus one, so
a deleted project's or reply's id would name the next one. MySQL/MariaDB never reuse AUTO_INCREMENT ids:
the rebuild is skipped there.

Revision ID: 0004_ids_never_reused
Revises: 0003_tokens_scope_expiry
Create Date: 2026-12-02

"""
from alembic import op

revision = '0004_ids_never_reused'
down_revision = '0003_tokens_scope_expiry'
branch_labels = None
depends_on = None

TABLES = ('projects', 'snapshots', 'chat_messages', 'pushes')


def upgrade():
    _rebuild_on_sqlite(autoincrement=True)


def downgrade():
    _rebuild_on_sqlite(autoincrement=False)


def _rebuild_on_sqlite(*, autoincrement):
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass
