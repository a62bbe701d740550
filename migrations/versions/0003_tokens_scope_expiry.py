"""API tokens: a scope (read or write) and an optional expiry

Revision ID: 0003_tokens_scope_expiry
Revises: 0002_money_sessions
Create Date: 2026-12-02

Existing tokens become `write` tokens that never expire: exactly what they could do before.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0003_tokens_scope_expiry'
down_revision = '0002_money_sessions'
branch_labels = None
depends_on = None


def upgrade():
    # batch mode: SQLite cannot add a NOT NULL column with a default or drop a column in place.
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=10), server_default='write', nullable=False))
        batch_op.add_column(sa.Column(
            'expires_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb'), nullable=True))


def downgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('scope')
