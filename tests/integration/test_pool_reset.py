"""A connection going back to the pool is rolled back only when it may hold an open transaction:
never after a commit (a round trip for nothing on every unit of work), always after uncommitted work."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.extensions import reset_only_dirty_connections


@pytest.fixture
def rollbacks(monkeypatch):
    """Counts the ROLLBACKs the DBAPI sends (SQLAlchemy's own and the pool's alike)."""
    import pymysql.connections

    counted = {"n": 0}
    original = pymysql.connections.Connection.rollback

    def counting(self):
        counted["n"] += 1
        return original(self)

    monkeypatch.setattr(pymysql.connections.Connection, "rollback", counting)
    return counted


@pytest.fixture
def engine(database_url):
    if not database_url.startswith("mysql"):
        pytest.skip("counts PyMySQL's rollbacks")
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_reset_on_return=None)
    reset_only_dirty_connections(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS pool_reset_probe (n INT)"))
        connection.execute(text("DELETE FROM pool_reset_probe"))
    yield engine
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE pool_reset_probe"))
    engine.dispose()


def test_a_committed_unit_of_work_returns_its_connection_without_a_rollback(engine, rollbacks):
    with Session(engine) as session:
        session.execute(text("INSERT INTO pool_reset_probe VALUES (1)"))
        session.commit()
    assert rollbacks["n"] == 0


def test_work_after_the_commit_is_rolled_back_once(engine, rollbacks):
    with Session(engine) as session:
        session.execute(text("INSERT INTO pool_reset_probe VALUES (1)"))
        session.commit()
        session.execute(text("INSERT INTO pool_reset_probe VALUES (2)"))
    assert rollbacks["n"] == 1
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM pool_reset_probe")).scalars().all() == [1]


def test_raw_dbapi_work_is_rolled_back_on_return(engine, rollbacks):
    raw = engine.raw_connection()
    with raw.cursor() as cursor:
        cursor.execute("INSERT INTO pool_reset_probe VALUES (3)")
    raw.close()  # back to the pool of one, uncommitted
    assert rollbacks["n"] == 1
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM pool_reset_probe")).scalar_one() == 0


def test_the_apps_engine_skips_the_needless_rollback(app, rollbacks):
    from app.extensions import db

    with app.app_context():
        db.session.execute(text("SELECT 1"))
        db.session.commit()
        db.session.remove()
        assert rollbacks["n"] == 0
        db.session.execute(text("SELECT 1"))
        db.session.remove()
        assert rollbacks["n"] == 1


def test_a_failed_commit_leaves_the_connection_to_be_rolled_back(engine, rollbacks, monkeypatch):
    import pymysql.connections

    real_commit = pymysql.connections.Connection.commit

    def refuse(self):
        raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")

    with Session(engine) as session:
        session.execute(text("INSERT INTO pool_reset_probe VALUES (4)"))
        monkeypatch.setattr(pymysql.connections.Connection, "commit", refuse)
        with pytest.raises(Exception, match="Deadlock"):
            session.commit()
        monkeypatch.setattr(pymysql.connections.Connection, "commit", real_commit)
    assert rollbacks["n"] >= 1
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM pool_reset_probe")).scalar_one() == 0
