"""The pool pings a connection before use only when it sat idle: a dead idle one is replaced, a fresh one is not pinged."""

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from app.extensions import ping_idle_connections


def _engine(tmp_path, idle_after_s: float):
    engine = create_engine(f"sqlite:///{tmp_path / 'pool.db'}", poolclass=QueuePool, pool_size=1, max_overflow=0)
    ping_idle_connections(engine, idle_after_s=idle_after_s)
    return engine


def _kill_pooled_connection(engine) -> None:
    """Close the one pooled DBAPI connection behind the pool's back, as a server restart would."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        pooled = connection.connection.dbapi_connection
    pooled.close()


def test_an_idle_dead_connection_is_replaced_before_use(tmp_path):
    engine = _engine(tmp_path, idle_after_s=0)
    _kill_pooled_connection(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 41 + 1")).scalar_one() == 42
    assert engine.pool.checkedin() == 1


def test_a_connection_used_a_moment_ago_is_not_pinged(tmp_path):
    engine = _engine(tmp_path, idle_after_s=3600)
    _kill_pooled_connection(engine)
    # No ping: the dead connection is handed out and its first statement fails as a disconnect, on
    # which SQLAlchemy invalidates it; the next checkout gets a fresh one.
    with pytest.raises(DBAPIError) as failure, engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert failure.value.connection_invalidated
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
