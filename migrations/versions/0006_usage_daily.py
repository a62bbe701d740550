"""Daily usage rollups (`usage_daily`), created and backfilled from the ledger's chat charges

Expand (a new table nobody reads yet) → backfill (every chat charge already on the ledger, summed per
account, day, member, project and model) → no contract step. The backfill is a frozen copy of
`services/usage/rollups.contribution` (a migration must not change when the app's code does). It counts
the entries that existed before the table did; processes of this release count every charge after it (the
backfill adds to their rows); a charge settled by a process of the previous release while this runs is
counted by nobody, and `flask usage reconcile --fix` (run once after the deploy) adds it.

Revision ID: 0006_usage
Revises: 0005_teams
Create Date: 2026-12-08

"""
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, sqlite

revision = '0006_usage'
down_revision = '0006_vers'  # chained after vers' migration
branch_labels = None
depends_on = None

BATCH = 5000
KEY = ('account_id', 'day', 'member_id', 'project_id', 'model')
AMOUNTS = ('tokens_in', 'tokens_out', 'credits', 'replies', 'failed_replies', 'stopped_replies')

ledger = sa.table('ledger_entries', sa.column('id', sa.BigInteger), sa.column('user_id', sa.BigInteger),
                  sa.column('member_id', sa.BigInteger), sa.column('delta', sa.BigInteger),
                  sa.column('reason', sa.String), sa.column('model', sa.String), sa.column('meta', sa.JSON),
                  sa.column('created_at', sa.DateTime))
messages = sa.table('chat_messages', sa.column('id', sa.BigInteger), sa.column('project_id', sa.BigInteger))
users = sa.table('users', sa.column('id', sa.BigInteger))


def upgrade():
    # The ledger as it stands before the table exists: a process of this release can only count entries
    # posted after it exists (ids above this), so the backfill takes the ones up to it and never counts twice.
    last_id = op.get_bind().execute(sa.select(sa.func.max(ledger.c.id))).scalar() or 0
    op.create_table('usage_daily',
    sa.Column('account_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('member_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('project_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('tokens_in', sa.BigInteger(), nullable=False),
    sa.Column('tokens_out', sa.BigInteger(), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('replies', sa.BigInteger(), nullable=False),
    sa.Column('failed_replies', sa.BigInteger(), nullable=False),
    sa.Column('stopped_replies', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'day', 'member_id', 'project_id', 'model', name=op.f('pk_usage_daily')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('usage_daily', schema=None) as batch_op:
        batch_op.create_index('ix_usage_daily_member_id_day', ['member_id', 'day'], unique=False)
    _backfill(last_id)


def _int(meta, name):
    value = meta.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _as_datetime(value):
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _backfill(last_id):
    connection = op.get_bind()
    sums = {}
    after = 0
    while True:
        batch = connection.execute(
            sa.select(ledger.c.id, ledger.c.user_id, ledger.c.member_id, ledger.c.delta, ledger.c.model,
                      ledger.c.meta, ledger.c.created_at)
            .where(ledger.c.reason == 'chat', ledger.c.user_id.is_not(None), ledger.c.id > after,
                   ledger.c.id <= last_id)
            .order_by(ledger.c.id).limit(BATCH)).all()
        if not batch:
            break
        after = batch[-1].id
        _add_batch(connection, batch, sums)
    alive = set()
    members = sorted({key[2] for key in sums if key[2]})
    for start in range(0, len(members), BATCH):
        alive |= set(connection.execute(sa.select(users.c.id).where(
            users.c.id.in_(members[start:start + BATCH]))).scalars())
    merged = {}
    for (account_id, day, member_id, project_id, model), amounts in sums.items():
        key = (account_id, day, member_id if member_id in alive else 0, project_id, model)
        into = merged.setdefault(key, [0] * len(AMOUNTS))
        for index, value in enumerate(amounts):
            into[index] += value
    rows = [dict(zip(KEY, key), **dict(zip(AMOUNTS, amounts)))
            for key, amounts in merged.items()]
    for start in range(0, len(rows), BATCH):
        connection.execute(_add_rows(connection), rows[start:start + BATCH])


def _add_rows(connection):
    """INSERT that adds to a row a process of this release created meanwhile (web nodes already upgraded
    count their new charges as soon as the table exists), rather than failing on its key."""
    table = sa.table('usage_daily', *(sa.column(name) for name in KEY + AMOUNTS))
    if connection.dialect.name in ('mysql', 'mariadb'):
        statement = mysql.insert(table)
        return statement.on_duplicate_key_update({name: table.c[name] + statement.inserted[name] for name in AMOUNTS})
    statement = sqlite.insert(table)
    return statement.on_conflict_do_update(index_elements=list(KEY),
                                           set_={name: table.c[name] + statement.excluded[name] for name in AMOUNTS})


def _add_batch(connection, batch, sums):
    def meta_int(meta, name):
        value = meta.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    metas = [row.meta if isinstance(row.meta, dict) else {} for row in batch]
    wanted = {meta_int(meta, 'message_id') for meta in metas if meta_int(meta, 'project_id') is None} - {None}
    projects = dict(connection.execute(sa.select(messages.c.id, messages.c.project_id).where(
        messages.c.id.in_(wanted))).all()) if wanted else {}
    for row, meta in zip(batch, metas):
        project_id = meta_int(meta, 'project_id')
        if project_id is None:
            project_id = projects.get(meta_int(meta, 'message_id'))
        day = _as_datetime(row.created_at).date()
        key = (row.user_id, day, row.member_id or 0, project_id or 0,
               (row.model or '')[:100])
        status = meta.get('status')
        amounts = (_int(meta, 'tokens_in'), _int(meta, 'tokens_out'), -row.delta, 1, int(status == 'failed'),
                   int(status == 'stopped'))
        into = sums.setdefault(key, [0] * len(AMOUNTS))
        for index, value in enumerate(amounts):
            into[index] += value


def downgrade():
    with op.batch_alter_table('usage_daily', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_daily_member_id_day')
    op.drop_table('usage_daily')
