"""Migrations upgrade and downgrade cleanly on MariaDB and SQLite, and agree with the models."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from tests.conftest import build_config, recreate_mysql_database


def compare(application):
    with application.app_context():
        with db.engine.connect() as connection:
            from sqlalchemy import JSON

            def compare_type(ctx, inspected_column, metadata_column, inspected_type, metadata_type):
                if isinstance(metadata_column.type, JSON) and ctx.dialect.name in ("mysql", "mariadb"):
                    return False
                return None

            context = MigrationContext.configure(connection, opts={"compare_type": compare_type})
            return compare_metadata(context, db.metadata)


def cycle(application):
    with application.app_context():
        upgrade()
        assert compare(application) == []
        tables = set(inspect(db.engine).get_table_names())
        assert {"users", "ledger_entries", "snapshots", "stripe_events", "pushes"} <= tables
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert compare(application) == []
        db.engine.dispose()


def test_mariadb_upgrade_downgrade_and_models_agree(database_url, tmp_path):
    if not database_url.startswith("mysql"):
        pytest.skip("TEST_DATABASE_URL is not MariaDB")
    url = database_url.replace("?", "_migrations?", 1) if "?" in database_url else database_url + "_migrations"
    recreate_mysql_database(url)
    cycle(create_app(build_config(str(tmp_path), DATABASE_URL=url)))


def test_sqlite_upgrade_downgrade_and_models_agree(tmp_path):
    cycle(create_app(build_config(str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'm.db'}")))
