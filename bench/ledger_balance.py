"""Reading a balance stays constant as a user's ledger grows from 1,000 to 1,000,000 entries.

Sorya reads `credit_balances` (one primary-key row kept in step with every entry); the baseline is the
naive `SELECT SUM(delta)` over the user's ledger, timed at the same sizes in the same run. Target: the
balance read at 1,000,000 entries within 1.5x of the read at 1,000.

Runs against a dedicated MariaDB database (`BENCH_DATABASE_URL`, default `sorya_bench` on the local
server), dropped and rebuilt from the migrations at each run. The ledger is filled with multi-row
INSERTs in chunks, bypassing the service (which would take hours for a million posts), and the balance
row is set to the ledger's sum in the same transaction; the run checks they agree at each size.

    .venv/bin/python bench/ledger_balance.py [--quick]      # --quick: 1,000 and 100,000 entries
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os  # noqa: E402

import pymysql  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import Report, parse_args  # noqa: E402

DEFAULT_BENCH_DATABASE_URL = "mysql+pymysql://sorya:sorya@127.0.0.1:3306/sorya_bench?charset=utf8mb4"
SMALL_ENTRIES = 1_000
LARGE_ENTRIES = 1_000_000
QUICK_LARGE_ENTRIES = 100_000
ROWS_PER_INSERT = 5_000
BALANCE_READS = 1000
NAIVE_READS_SMALL = 100
NAIVE_READS_LARGE = 10


def size_label(entries: int) -> str:
    return f"{entries // 1_000_000}m" if entries % 1_000_000 == 0 else f"{entries // 1000}k"


def drop_database(url: str) -> None:
    """A million rows are a few hundred MB of disk: the run leaves nothing behind."""
    recreate_database(url, create=False)


def recreate_database(url: str, *, create: bool = True) -> None:
    parsed = make_url(url)
    connection = pymysql.connect(
        host=parsed.host or "127.0.0.1", port=parsed.port or 3306, user=parsed.username,
        password=parsed.password or "", charset="utf8mb4",
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{parsed.database}`")
            if create:
                cursor.execute(f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    finally:
        connection.close()


def build_app(url: str):
    from flask_migrate import upgrade

    from app import create_app
    from config import Config

    config = Config.from_env(
        env={}, TESTING=True, DATABASE_URL=url, INSTANCE_DIR=tempfile.mkdtemp(prefix="sorya-bench-"),
        SECRET_KEY="bench-" + "x" * 40,
    )
    application = create_app(config)
    with application.app_context():
        upgrade()
    return application


def fill_ledger(session, user_id: int, start: int, stop: int) -> None:
    """Append entries start..stop-1 for the user (alternating grants and charges) and move the balance."""
    from app.models import CreditBalance

    balance = session.get(CreditBalance, user_id).balance
    connection = session.connection().connection.dbapi_connection
    statement = (
        "INSERT INTO ledger_entries (user_id, delta, reason, idempotency_key, balance_after, model, meta, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))"
    )
    with connection.cursor() as cursor:
        for chunk_start in range(start, stop, ROWS_PER_INSERT):
            rows = []
            for number in range(chunk_start, min(chunk_start + ROWS_PER_INSERT, stop)):
                delta, reason, model = (25, "plan_grant", None) if number % 2 else (-20, "chat", "gpt-5")
                balance += delta
                rows.append((user_id, delta, reason, f"bench:{user_id}:{number}", balance, model, "{}"))
            # PyMySQL turns executemany of one INSERT ... VALUES into multi-row INSERT statements.
            cursor.executemany(statement, rows)
    session.execute(
        CreditBalance.__table__.update().where(CreditBalance.user_id == user_id).values(balance=balance)
    )
    session.commit()


def typical_seconds(action, repeats: int, batches: int = 10) -> float:
    """The lowest of `batches` batch medians: a burst of load from other processes on this shared
    machine spoils a batch or two, not the figure."""
    action()  # warm the buffer pool and the statement cache
    per_batch = max(repeats // batches, 1)
    medians = []
    for _ in range(batches):
        samples = []
        for _ in range(per_batch):
            started = time.perf_counter()
            action()
            samples.append(time.perf_counter() - started)
        medians.append(statistics.median(samples))
    return min(medians)


def measure(session, user_id: int, naive_repeats: int) -> tuple[float, float, int, int]:
    """(balance read s, naive SUM s, the balance, the sum): the two must agree."""
    from app.models import LedgerEntry
    from app.services import credits

    def read_balance() -> int:
        value = credits.credit_summary(session, user_id).balance
        session.rollback()  # each read is its own short transaction, as in a request
        return value

    def naive_sum() -> int:
        value = session.execute(
            select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.user_id == user_id)
        ).scalar()
        session.rollback()
        return int(value)

    return (
        typical_seconds(read_balance, BALANCE_READS),
        typical_seconds(naive_sum, naive_repeats, batches=min(naive_repeats, 5)),
        read_balance(),
        naive_sum(),
    )


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    large = QUICK_LARGE_ENTRIES if args.quick else LARGE_ENTRIES
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE_URL)
    recreate_database(url)
    application = build_app(url)

    from app.extensions import db
    from app.models import User
    from app.services import credits

    report = Report("ledger_balance")
    with application.app_context():
        session = db.session
        user = User(login="bench", name="Bench")
        session.add(user)
        session.commit()
        user_id = user.id
        credits.post_ledger_entry(
            session, user_id=user_id, delta=1_000_000, reason="adjustment", idempotency_key="bench:start"
        )

        sizes = {}
        for label, size, naive_repeats in (("1k", SMALL_ENTRIES, NAIVE_READS_SMALL), (size_label(large), large, NAIVE_READS_LARGE)):
            have = session.execute(text("SELECT COUNT(*) FROM ledger_entries WHERE user_id = :u"), {"u": user_id}).scalar()
            started = time.perf_counter()
            fill_ledger(session, user_id, have, size)
            fill_s = time.perf_counter() - started
            session.execute(text("ANALYZE TABLE ledger_entries"))
            session.rollback()
            balance_s, naive_s, balance, total = measure(session, user_id, naive_repeats)
            if balance != total:
                raise SystemExit(f"balance {balance} != ledger sum {total} at {size:,} entries")
            print(f"{size:,} entries (filled {size - have:,} in {fill_s:.1f} s): balance {balance:,} = ledger sum")
            sizes[label] = (balance_s, naive_s)
            report.compare(f"balance_read_ms_{label}", balance_s * 1000, naive_s * 1000, "ms",
                           ratio_name=f"balance_read_vs_naive_sum_{label}")

        (small_balance, small_naive), (large_balance, large_naive) = sizes.values()
        large_label = list(sizes)[1]
        growth = large_balance / small_balance
        report.ratios[f"balance_read_growth_1k_to_{large_label}"] = round(growth, 4)
        report.ratios[f"naive_sum_growth_1k_to_{large_label}"] = round(large_naive / small_naive, 4)
        report.rows.append((f"growth 1k -> {large_label}", f"{growth:.3f}x", f"{large_naive / small_naive:.1f}x",
                            "target <= 1.5" if growth <= 1.5 else "ABOVE TARGET 1.5"))
        db.session.remove()
        db.engine.dispose()
    drop_database(url)
    report.print()


if __name__ == "__main__":
    main()
