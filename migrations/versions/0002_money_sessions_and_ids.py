"""Signed-in sessions kept server-side; ids that leave the server never reused on SQLite

`user_sessions`: one row per signed-in browser, named by the session and remember cookies, so a cookie
dies with its row (sign out, sign out everywhere, account deleted), copied or not.

On SQLite, `users`, `api_tokens` and `ledger_entries` are rebuilt with AUTOINCREMENT: without it SQLite
hands the highest deleted id to the next row, so a deleted account's id (in its old cookies) named the
next account. MySQL/MariaDB never reuse AUTO_INCREMENT ids: the rebuild is skipped there.

Revision ID: 0002_money_sessions
Revises: 0001_initial
Create Date: 2026-12-02

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0002_money_sessions'
down_revision = '0001_initial'
branch_labels = None
depends_on = None

# Tables whose ids leave the server (cookies, URLs, API answers).
NEVER_REUSED_ID_TABLES = ('users', 'api_tokens', 'ledger_entries')


def upgrade():
    op.create_table('user_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_user_sessions_user_id_created_at', 'user_sessions', ['user_id', 'created_at'], unique=False)
    _rebuild_on_sqlite(autoincrement=True)


def downgrade():
    _rebuild_on_sqlite(autoincrement=False)
    op.drop_table('user_sessions')  # its index goes with it (MariaDB refuses to drop an index a foreign key uses)


def _rebuild_on_sqlite(*, autoincrement):
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in NEVER_REUSED_ID_TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass
