"""0005_teams on data: every person gets a personal workspace, every project moves into it, and the way
down keeps people, projects and their money (MariaDB and SQLite)."""

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.conftest import build_config, recreate_mysql_database

NOW = "2026-12-01 10:00:00"
SEED = [
    "INSERT INTO users (id, login, name, plan, created_at, updated_at) VALUES (1, 'Ada', '', 'free', :now, :now)",
    "INSERT INTO users (id, login, name, plan, created_at, updated_at) VALUES (2, 'bob', '', 'pro', :now, :now)",
    "INSERT INTO credit_balances (user_id, balance, held, updated_at) VALUES (1, 90, 10, :now)",
    "INSERT INTO ledger_entries (user_id, delta, reason, idempotency_key, balance_after, meta, created_at) "
    "VALUES (1, 100, 'signup', 'signup:1', 100, '{}', :now)",
    "INSERT INTO ledger_entries (user_id, delta, reason, idempotency_key, balance_after, meta, created_at) "
    "VALUES (1, -10, 'chat', 'chat:1', 90, '{}', :now)",
    "INSERT INTO credit_holds (user_id, amount, status, idempotency_key, expires_at, created_at) "
    "VALUES (1, 10, 'active', 'chat-reply:9', :now, :now)",
    "INSERT INTO projects (id, user_id, name, description, status, created_at, updated_at) "
    "VALUES (5, 1, 'site', '', 'active', :now, :now)",
    "INSERT INTO projects (id, user_id, name, description, status, created_at, updated_at) "
    "VALUES (6, 2, 'api', '', 'active', :now, :now)",
]


def _run(application):
    with application.app_context():
        upgrade(revision="0004_ids_never_reused")
        with db.engine.begin() as connection:
            for statement in SEED:
                connection.execute(text(statement), {"now": NOW})
        upgrade(revision="0005_teams")
        with db.engine.begin() as connection:
            spaces = connection.execute(text(
                "SELECT w.account_user_id, w.kind, w.name, m.role, m.status, m.login FROM workspaces w "
                "JOIN workspace_members m ON m.workspace_id = w.id ORDER BY w.account_user_id")).all()
            assert [tuple(row) for row in spaces] == [
                (1, "personal", "Ada", "owner", "active", "ada"), (2, "personal", "bob", "owner", "active", "bob")]
            placed = connection.execute(text(
                "SELECT p.id, w.account_user_id FROM projects p JOIN workspaces w ON w.id = p.workspace_id "
                "ORDER BY p.id")).all()
            assert [tuple(row) for row in placed] == [(5, 1), (6, 2)]
            # A team with its own account and money, so the way down has something to clear.
            connection.execute(text("INSERT INTO users (id, login, name, plan, created_at, updated_at) "
                                    "VALUES (3, 'team:1', '', 'free', :now, :now)"), {"now": NOW})
            connection.execute(text("INSERT INTO workspaces (name, kind, account_user_id, created_at) "
                                    "VALUES ('Acme', 'team', 3, :now)"), {"now": NOW})
            connection.execute(text("INSERT INTO credit_balances (user_id, balance, held, updated_at) "
                                    "VALUES (3, 50, 0, :now)"), {"now": NOW})
            connection.execute(text(
                "INSERT INTO ledger_entries (user_id, member_id, delta, reason, idempotency_key, balance_after, "
                "meta, created_at) VALUES (3, 1, 50, 'admin_grant', 'team-grant:1', 50, '{}', :now)"),
                {"now": NOW})
        downgrade(revision="0004_ids_never_reused")
        with db.engine.begin() as connection:
            assert connection.execute(text("SELECT id FROM users ORDER BY id")).scalars().all() == [1, 2]
            assert connection.execute(text("SELECT id FROM projects ORDER BY id")).scalars().all() == [5, 6]
            assert connection.execute(text(
                "SELECT balance, held FROM credit_balances WHERE user_id = 1")).one() == (90, 10)
            assert connection.execute(text("SELECT COUNT(*) FROM ledger_entries")).scalar() == 3
        upgrade()
        with db.engine.begin() as connection:
            assert connection.execute(text("SELECT COUNT(*) FROM workspaces")).scalar() == 2
        db.engine.dispose()


def test_backfill_and_way_down_on_mariadb(database_url, tmp_path):
    if not database_url.startswith("mysql"):
        pytest.skip("TEST_DATABASE_URL is not MariaDB")
    url = database_url.replace("?", "_wsmig?", 1) if "?" in database_url else database_url + "_wsmig"
    recreate_mysql_database(url)
    _run(create_app(build_config(str(tmp_path), DATABASE_URL=url)))


def test_backfill_and_way_down_on_sqlite(tmp_path):
    _run(create_app(build_config(str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}")))
