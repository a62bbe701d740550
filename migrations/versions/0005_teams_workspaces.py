"""Workspaces: personal and team, their members, projects in a workspace, team pools' spenders

Expand (new tables, nullable columns) → backfill (a personal workspace for every person, with them as
owner; every project into its creator's personal workspace) → the contract step is deliberately left
out: `projects.workspace_id` stays nullable so a process still running the previous release keeps
creating projects while this runs; the app reads NULL as the creator's personal workspace.

On SQLite the tables whose ids are never reused (ledger_entries, projects) are rebuilt keeping
AUTOINCREMENT (see 0004).

Revision ID: 0005_teams
Revises: 0004_ids_never_reused
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0005_teams'
down_revision = '0005_gh'  # chained after the workspace, edits and GitHub migrations
branch_labels = None
depends_on = None

KEEP_IDS = {'sqlite_autoincrement': True}


def upgrade():
    op.create_table('workspaces',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('account_user_id', sa.BigInteger(), nullable=False),
    sa.Column('seats', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb'), nullable=False),
    sa.ForeignKeyConstraint(['account_user_id'], ['users.id'], name=op.f('fk_workspaces_account_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspaces')),
    sa.UniqueConstraint('account_user_id', name=op.f('uq_workspaces_account_user_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB',
    sqlite_autoincrement=True
    )
    op.create_table('workspace_members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.Column('login', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('monthly_cap', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_workspace_members_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_workspace_members_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspace_members')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('workspace_members', schema=None) as batch_op:
        batch_op.create_index('ix_workspace_members_login_status', ['login', 'status'], unique=False)
        batch_op.create_index('ix_workspace_members_user_id', ['user_id'], unique=False)
        batch_op.create_index('uq_workspace_members_workspace_id_login', ['workspace_id', 'login'], unique=True)

    with op.batch_alter_table('credit_holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('member_id', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_credit_holds_user_id_member_id_status', ['user_id', 'member_id', 'status'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_credit_holds_member_id_users'), 'users', ['member_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('ledger_entries', schema=None, table_kwargs=KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column('member_id', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_ledger_entries_user_id_member_id_created_at', ['user_id', 'member_id', 'created_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_ledger_entries_member_id_users'), 'users', ['member_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('projects', schema=None, table_kwargs=KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column('workspace_id', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_projects_workspace_id'), ['workspace_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_projects_workspace_id_workspaces'), 'workspaces', ['workspace_id'], ['id'], ondelete='CASCADE')

    _backfill_personal_workspaces()


def _backfill_personal_workspaces():
    """Idempotent: only people without a personal workspace get one; only unplaced projects move."""
    op.execute(
        "INSERT INTO workspaces (name, kind, account_user_id, created_at) "
        "SELECT u.login, 'personal', u.id, u.created_at FROM users u "
        "WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.account_user_id = u.id)"
    )
    op.execute(
        "INSERT INTO workspace_members (workspace_id, user_id, login, role, status, created_at) "
        "SELECT w.id, u.id, LOWER(u.login), 'owner', 'active', w.created_at "
        "FROM workspaces w JOIN users u ON u.id = w.account_user_id "
        "WHERE w.kind = 'personal' AND NOT EXISTS "
        "(SELECT 1 FROM workspace_members m WHERE m.workspace_id = w.id AND m.user_id = u.id)"
    )
    op.execute(
        "UPDATE projects SET workspace_id = (SELECT w.id FROM workspaces w "
        "WHERE w.account_user_id = projects.user_id AND w.kind = 'personal') WHERE workspace_id IS NULL"
    )


def _drop_team_accounts():
    """A team's pool account is a users row of its own: without workspaces it is nobody's, so it goes,
    with its balance and holds (team projects stay, as their creators' own)."""
    team_accounts = "SELECT account_user_id FROM workspaces WHERE kind = 'team'"
    for table, column in (('credit_holds', 'user_id'), ('credit_balances', 'user_id'),
                          ('user_sessions', 'user_id'), ('api_tokens', 'user_id')):
        op.execute(f"DELETE FROM {table} WHERE {column} IN ({team_accounts})")
    op.execute(f"UPDATE ledger_entries SET user_id = NULL WHERE user_id IN ({team_accounts})")
    # MariaDB refuses a DELETE whose subquery reads the target table's referrer only via a derived table.
    op.execute(f"DELETE FROM users WHERE id IN (SELECT account_user_id FROM ({team_accounts}) AS t)")



def downgrade():
    _drop_team_accounts()
    with op.batch_alter_table('projects', schema=None, table_kwargs=KEEP_IDS) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_projects_workspace_id_workspaces'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_projects_workspace_id'))
        batch_op.drop_column('workspace_id')

    with op.batch_alter_table('ledger_entries', schema=None, table_kwargs=KEEP_IDS) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_ledger_entries_member_id_users'), type_='foreignkey')
        batch_op.drop_index('ix_ledger_entries_user_id_member_id_created_at')
        batch_op.drop_column('member_id')

    with op.batch_alter_table('credit_holds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_credit_holds_member_id_users'), type_='foreignkey')
        batch_op.drop_index('ix_credit_holds_user_id_member_id_status')
        batch_op.drop_column('member_id')

    # Dropping the table drops its indexes (MariaDB refuses to drop one a foreign key needs first).
    op.drop_table('workspace_members')
    op.drop_table('workspaces')
