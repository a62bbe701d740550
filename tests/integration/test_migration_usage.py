"""0006_usage on data: the rollups are backfilled from the ledger's chat charges (project from the entry or
its reply, member, model, day, tokens, failed and stopped), everything else on the ledger is left out, the
way down drops only the table, and the way back up rebuilds the same rows (MariaDB and SQLite)."""

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.conftest import build_config, recreate_mysql_database

DAY1, DAY2 = "2026-11-30 23:59:59", "2026-12-01 00:00:01"
ENTRY = ("INSERT INTO ledger_entries (user_id, member_id, delta, reason, idempotency_key, balance_after, model, meta, "
         "created_at) VALUES ")
SEED = [
    "INSERT INTO users (id, login, name, plan, created_at, updated_at) VALUES (1, 'ada', '', 'free', :d1, :d1)",
    "INSERT INTO users (id, login, name, plan, created_at, updated_at) VALUES (2, 'team:1', '', 'free', :d1, :d1)",
    "INSERT INTO users (id, login, name, plan, created_at, updated_at) VALUES (3, 'bob', '', 'free', :d1, :d1)",
    "INSERT INTO workspaces (id, name, kind, account_user_id, created_at) VALUES (1, 'Acme', 'team', 2, :d1)",
    "INSERT INTO projects (id, user_id, workspace_id, name, description, status, created_at, updated_at) "
    "VALUES (5, 1, 1, 'site', '', 'active', :d1, :d1)",
    "INSERT INTO chat_messages (id, user_id, project_id, role, content, status, tokens_in, tokens_out, cost, "
    "created_at) VALUES (40, 1, 5, 'assistant', 'x', 'complete', 0, 0, 0, :d1)",
    # ada's own replies: one before workspaces carried no status, one stopped; the day boundary splits them.
    ENTRY + "(1, NULL, -10, 'chat', 'chat:1', 90, 'gpt-5', '{\"tokens_in\": 100, \"tokens_out\": 7}', :d1)",
    ENTRY + "(1, NULL, -4, 'chat', 'chat:2', 86, 'gpt-5', '{\"tokens_in\": 9, \"tokens_out\": 1, \"status\": "
            "\"stopped\"}', :d2)",
    # The team's pool: bob's reply (project from the reply row), a failed one (project in meta), no model.
    ENTRY + "(2, 3, -20, 'chat', 'chat:40', 80, 'gpt-5', '{\"message_id\": 40, \"tokens_in\": 50, "
            "\"tokens_out\": 5, \"status\": \"complete\"}', :d2)",
    ENTRY + "(2, 3, -6, 'chat', 'chat:41', 74, 'gpt-5', '{\"project_id\": 5, \"tokens_in\": 30, "
            "\"tokens_out\": 2, \"status\": \"failed\"}', :d2)",
    ENTRY + "(2, 3, -1, 'chat', 'chat:42', 73, NULL, '{}', :d2)",
    # Not usage: grants, and a deleted account's detached charge.
    ENTRY + "(2, 1, 100, 'admin_grant', 'grant:1', 100, NULL, '{}', :d1)",
    ENTRY + "(NULL, NULL, -3, 'chat', 'chat:99', 0, 'gpt-5', '{}', :d1)",
]
EXPECTED = [
    (1, "2026-11-30", 0, 0, "gpt-5", 100, 7, 10, 1, 0, 0),
    (1, "2026-12-01", 0, 0, "gpt-5", 9, 1, 4, 1, 0, 1),
    (2, "2026-12-01", 3, 0, "", 0, 0, 1, 1, 0, 0),
    (2, "2026-12-01", 3, 5, "gpt-5", 80, 7, 26, 2, 1, 0),
]


def _rollups(connection):
    found = connection.execute(text(
        "SELECT account_id, day, member_id, project_id, model, tokens_in, tokens_out, credits, replies, "
        "failed_replies, stopped_replies FROM usage_daily ORDER BY account_id, day, member_id, project_id, model"))
    return [(row[0], str(row[1]), *row[2:]) for row in found]


def _run(application):
    with application.app_context():
        upgrade(revision="0005_teams")
        with db.engine.begin() as connection:
            for statement in SEED:
                connection.execute(text(statement), {"d1": DAY1, "d2": DAY2})
        upgrade(revision="0006_usage")
        with db.engine.begin() as connection:
            assert _rollups(connection) == EXPECTED
        downgrade(revision="0005_teams")
        with db.engine.begin() as connection:
            assert connection.execute(text("SELECT COUNT(*) FROM ledger_entries")).scalar() == 7
            assert "usage_daily" not in db.inspect(connection).get_table_names()
        upgrade()
        with db.engine.begin() as connection:
            assert _rollups(connection) == EXPECTED
        assert application.test_cli_runner().invoke(args=["usage", "reconcile"]).exit_code == 0
        db.engine.dispose()


def test_backfill_and_way_down_on_mariadb(database_url, tmp_path):
    if not database_url.startswith("mysql"):
        pytest.skip("TEST_DATABASE_URL is not MariaDB")
    url = database_url.replace("?", "_usagemig?", 1) if "?" in database_url else database_url + "_usagemig"
    recreate_mysql_database(url)
    _run(create_app(build_config(str(tmp_path), DATABASE_URL=url)))


def test_backfill_and_way_down_on_sqlite(tmp_path):
    _run(create_app(build_config(str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'u.db'}")))
