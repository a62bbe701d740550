"""The declarative base and the column types every model shares.

MySQL/MariaDB is the first dialect: BIGINT ids, DATETIME(6) in UTC, utf8mb4 with a binary collation (so
paths, keys and tokens compare byte for byte, exactly as on SQLite). Each type falls back to its SQLite
equivalent so the same migrations run on the embedded default.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, MetaData, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, registry
from sqlalchemy.types import TypeDecorator

# Stable constraint names: Alembic needs them to alter or drop constraints, SQLite batch mode above all.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MYSQL_TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

# SQLite only auto-increments an `INTEGER PRIMARY KEY`; MySQL gets BIGINT.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")
# Replies and files can exceed TEXT's 64 KiB on MySQL.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
LongBlob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime stored naive: DATETIME(6) on MySQL, text on SQLite.

    Naive values are refused on the way in, so no local time can slip into the database.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime.")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    # One registry carries both: Flask-SQLAlchemy subclasses the base, which a per-class map forbids.
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


def table_args(*items: Any) -> tuple[Any, ...]:
    """`__table_args__` with the MySQL table options appended to a model's own indexes."""
    return (*items, dict(MYSQL_TABLE_OPTIONS))


def ids_never_reused(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """`__table_args__` (from `table_args`) whose ids SQLite never hands out again after a delete.

    Without AUTOINCREMENT SQLite gives a new row the highest id in use plus one, so deleting the newest
    row frees its id for the next one; an id that left the server (in a signed cookie, a URL, an API
    answer) would then name someone else's row. MySQL/MariaDB never reuse an AUTO_INCREMENT id.
    """
    *items, options = args
    return (*items, {**options, "sqlite_autoincrement": True})

