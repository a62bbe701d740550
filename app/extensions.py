"""Unbound extension objects; `create_app` binds them with `init_app`."""

import time

from authlib.integrations.flask_client import OAuth
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

from app.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
oauth = OAuth()
# Default limits stay off: each sending route declares its own, keyed per user where it matters.
limiter = Limiter(key_func=get_remote_address, default_limits=[])

# A pooled connection idle at least this long is pinged before use (see `ping_idle_connections`).
IDLE_PING_AFTER_S = 5.0


def ping_idle_connections(engine: Engine, idle_after_s: float = IDLE_PING_AFTER_S) -> None:
    """Ping a pooled connection before handing it out only when it sat idle `idle_after_s` or longer.

    This replaces `pool_pre_ping`, which costs a round trip on every checkout (several per chat reply).
    A connection that went back to the pool moments ago is alive but for a server restart in between,
    and that case is caught anyway: the first statement on a dead connection raises a disconnect error,
    on which SQLAlchemy invalidates the whole pool, so every other connection older than the error
    reconnects at its next checkout. Idle connections, the ones a quiet night, a restart or a
    `wait_timeout` leaves dead, are still pinged, and one that fails is replaced before use (the pool
    retries a checkout that raises `DisconnectionError` with a fresh connection).
    `pool_recycle` (below MariaDB's `wait_timeout`) still retires old connections.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _note_checkin(dbapi_connection, record) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
        record.info["sorya_checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_when_idle(dbapi_connection, record, proxy) -> None:  # noqa: ANN001
        checked_in_at = record.info.get("sorya_checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_after_s:
            return  # a new connection, or one used a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


# `Connection.info` key: True while the connection has run nothing since its last commit or rollback.
_CLEAN_KEY = "sorya_transaction_ended"


def reset_only_dirty_connections(engine: Engine) -> None:
    """Roll a connection back on its return to the pool only when it may hold an open transaction.

    SQLAlchemy's default reset sends a ROLLBACK on every return unless the connection was closed
    inside a transaction (which it rolls back itself): so every committed unit of work, most of a chat
    reply's, paid one more round trip for a no-op; and a COMMIT that failed without a disconnect left
    its transaction open on the pooled connection. The engine runs with `pool_reset_on_return=None`
    (see `Config.to_flask`) and this listener resets instead, skipping only a connection whose last act
    was a commit or rollback through SQLAlchemy that did not fail. A checkout marks the connection
    dirty, so raw DBAPI use (`engine.raw_connection()`) is still rolled back.
    """

    @event.listens_for(engine, "checkout")
    def _dirty_on_checkout(dbapi_connection, record, proxy) -> None:  # noqa: ANN001
        record.info[_CLEAN_KEY] = False

    @event.listens_for(engine, "begin")
    def _dirty_on_begin(connection) -> None:  # noqa: ANN001
        connection.info[_CLEAN_KEY] = False

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _clean_on_end(connection) -> None:  # noqa: ANN001
        connection.info[_CLEAN_KEY] = True

    @event.listens_for(engine, "handle_error")
    def _dirty_on_error(context) -> None:  # noqa: ANN001 - a failed COMMIT may leave a transaction open
        if context.connection is not None and not context.connection.invalidated:
            context.connection.info[_CLEAN_KEY] = False

    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection, record, reset_state) -> None:  # noqa: ANN001
        # Not `reset_state.transaction_was_reset`: SQLAlchemy sets it after a failed COMMIT too.
        if record.info.get(_CLEAN_KEY):
            return
        dbapi_connection.rollback()


# How long a SQLite writer waits for the database's single write lock before giving up ("database is
# locked"): the driver's default is 5 s. Money transactions take that lock before reading a balance
# (`credits.lock_balance`), so under a burst writers queue on it the way MariaDB queues them on a row
# lock (whose wait limit, `innodb_lock_wait_timeout`, is 50 s); each holds it for milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def wait_for_sqlite_writers(engine: Engine, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    """On SQLite, let every connection wait up to `busy_timeout_ms` for the write lock. A no-op elsewhere."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _set_busy_timeout(dbapi_connection, record) -> None:  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.close()
