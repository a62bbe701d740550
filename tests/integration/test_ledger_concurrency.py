"""The ledger under real concurrency: real threads, each with its own connection and session, on MariaDB
and on a SQLite file (the embedded default), which must be exactly as correct.

A shared session would serialise everything and hide exactly the races these tests are about.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.errors import Conflict, InsufficientCredits
from app.extensions import db
from app.models import CreditBalance, CreditHold, LedgerEntry
from app.models.base import utcnow
from app.services import credits


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


def run_concurrently(app, count: int, work: Callable[[Any, int], Any]) -> list[tuple[str, Any]]:
    """Run `work(session, index)` in `count` threads released together; each has its own session."""
    barrier = threading.Barrier(count)
    results: list[tuple[str, Any]] = [("missing", None)] * count

    def runner(index: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results[index] = ("ok", work(db.session, index))
            except Exception as exc:  # noqa: BLE001 - the test inspects every outcome
                results[index] = ("error", exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=runner, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker hung (deadlock?)"
    return results


def state(app, user_id: int) -> dict[str, int]:
    with app.app_context():
        row = db.session.get(CreditBalance, user_id)
        balance, held = (row.balance, row.held) if row is not None else (0, 0)
        ledger = db.session.execute(
            select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.user_id == user_id)
        ).scalar()
        entries = db.session.execute(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.user_id == user_id)
        ).scalar()
        active = db.session.execute(
            select(func.coalesce(func.sum(CreditHold.amount), 0)).where(
                CreditHold.user_id == user_id, CreditHold.status == credits.HOLD_ACTIVE
            )
        ).scalar()
        discrepancies = credits.find_discrepancies(db.session)
        db.session.remove()
    return {"balance": balance, "held": held, "ledger": int(ledger), "entries": entries,
            "active_holds": int(active), "discrepancies": len(discrepancies)}


def outcomes(results: list[tuple[str, Any]]) -> tuple[list[Any], list[Exception]]:
    ok = [value for kind, value in results if kind == "ok"]
    errors = [value for kind, value in results if kind == "error"]
    return ok, errors


def test_fifty_concurrent_charges_against_a_balance_for_ten(app, make_user):
    user = make_user(balance=100)

    def charge(session, index):
        posting = credits.post_ledger_entry(
            session, user_id=user.id, delta=-10, reason=credits.REASON_CHAT, idempotency_key=f"charge:{index}"
        )
        return posting.entry.id

    ok, errors = outcomes(run_concurrently(app, 50, charge))

    assert len(ok) == 10 and len(set(ok)) == 10
    assert len(errors) == 40
    assert all(isinstance(error, InsufficientCredits) for error in errors), errors
    assert {(error.status, error.code) for error in errors} == {(402, "insufficient_credits")}
    after = state(app, user.id)
    assert after["balance"] == 0 == after["ledger"]
    assert after["entries"] == 11  # the starting grant and ten charges
    assert after["discrepancies"] == 0


def test_fifty_concurrent_replies_through_holds_charge_exactly_ten(app, make_user):
    user = make_user(balance=100)

    def reply(session, index):
        hold = credits.place_hold(session, user_id=user.id, amount=10, idempotency_key=f"hold:{index}")
        entry = credits.settle_hold(session, hold_id=hold.id, charge=10, idempotency_key=f"chat:{index}")
        return entry.delta

    ok, errors = outcomes(run_concurrently(app, 50, reply))

    assert ok == [-10] * 10
    assert len(errors) == 40 and all(isinstance(error, InsufficientCredits) for error in errors), errors
    after = state(app, user.id)
    assert (after["balance"], after["held"], after["active_holds"]) == (0, 0, 0)
    assert after["discrepancies"] == 0


def test_the_same_idempotency_key_from_two_connections_posts_once(app, make_user):
    user = make_user(balance=10)
    for round_number in range(15):
        key = f"invoice:in_{round_number}"

        def post(session, index, key=key):
            posting = credits.post_ledger_entry(
                session, user_id=user.id, delta=500, reason=credits.REASON_PLAN_GRANT, idempotency_key=key
            )
            return posting.entry.id, posting.created

        ok, errors = outcomes(run_concurrently(app, 2, post))
        assert not errors
        assert len({entry_id for entry_id, _ in ok}) == 1, "both connections must see the same entry"
        assert sorted(created for _, created in ok) == [False, True]
    after = state(app, user.id)
    assert after["balance"] == 10 + 15 * 500 == after["ledger"]
    assert after["entries"] == 16


def test_a_key_raced_by_two_accounts_posts_once_and_the_loser_is_told(app, make_user):
    first, second = make_user(balance=0), make_user(balance=0)
    users = [first, second]

    def post(session, index):
        return credits.post_ledger_entry(
            session, user_id=users[index].id, delta=7, reason=credits.REASON_REFUND, idempotency_key="shared"
        ).entry.user_id

    ok, errors = outcomes(run_concurrently(app, 2, post))
    assert len(ok) == 1 and len(errors) == 1 and isinstance(errors[0], Conflict)
    winner = ok[0]
    loser = second.id if winner == first.id else first.id
    assert state(app, winner)["balance"] == 7 and state(app, loser)["balance"] == 0


def test_concurrent_first_posts_create_one_balance_row_without_deadlock(app, make_user):
    user = make_user()  # no balance row yet

    def grant(session, index):
        return credits.post_ledger_entry(
            session, user_id=user.id, delta=3, reason=credits.REASON_ADMIN_GRANT, idempotency_key=f"g:{index}"
        ).created

    ok, errors = outcomes(run_concurrently(app, 12, grant))
    assert not errors, errors
    assert ok == [True] * 12
    after = state(app, user.id)
    assert after["balance"] == 36 == after["ledger"] and after["discrepancies"] == 0


def test_concurrent_holds_never_exceed_the_balance(app, make_user):
    user = make_user(balance=100)

    def hold(session, index):
        return credits.place_hold(session, user_id=user.id, amount=7, idempotency_key=f"h:{index}").amount

    ok, errors = outcomes(run_concurrently(app, 30, hold))
    assert ok == [7] * 14  # 14 x 7 = 98 <= 100 < 15 x 7
    assert len(errors) == 16 and all(isinstance(error, InsufficientCredits) for error in errors)
    after = state(app, user.id)
    assert after["held"] == 98 == after["active_holds"] and after["balance"] == 100
    assert after["discrepancies"] == 0


def test_settle_racing_release_closes_the_hold_exactly_once(app, make_user):
    user = make_user(balance=10_000)
    settled_rounds = 0
    for round_number in range(12):
        with app.app_context():
            hold_id = credits.place_hold(
                db.session, user_id=user.id, amount=50, idempotency_key=f"h:{round_number}"
            ).id
            db.session.remove()

        def close(session, index, hold_id=hold_id, round_number=round_number):
            if index == 0:
                entry = credits.settle_hold(
                    session, hold_id=hold_id, charge=30, idempotency_key=f"chat:{round_number}"
                )
                return "settled" if entry is not None else "too late"
            return "released" if credits.release_hold(session, hold_id=hold_id) else "too late"

        ok, errors = outcomes(run_concurrently(app, 2, close))
        assert not errors, errors
        with app.app_context():
            status = db.session.get(CreditHold, hold_id).status
            db.session.remove()
        # Release first: the settle still charges the delivered reply (late). Settle first: release is a no-op.
        assert sorted(ok) in (["settled", "too late"], ["released", "settled"])
        assert status == credits.HOLD_SETTLED
        settled_rounds += 1
    after = state(app, user.id)
    assert after["balance"] == 10_000 - 30 * settled_rounds == after["ledger"]
    assert after["held"] == 0 == after["active_holds"] and after["discrepancies"] == 0


def test_two_settles_of_one_hold_charge_once(app, make_user):
    user = make_user(balance=1000)
    with app.app_context():
        hold_id = credits.place_hold(db.session, user_id=user.id, amount=100, idempotency_key="h").id
        db.session.remove()

    def settle(session, index):
        entry = credits.settle_hold(session, hold_id=hold_id, charge=60, idempotency_key="chat:m1")
        return entry.id if entry is not None else None

    ok, errors = outcomes(run_concurrently(app, 4, settle))
    assert not errors and len(set(ok)) == 1 and ok[0] is not None
    after = state(app, user.id)
    assert (after["balance"], after["held"], after["entries"]) == (940, 0, 2)


def test_concurrent_sweeps_release_each_expired_hold_once(app, make_user):
    users = [make_user(balance=100) for _ in range(3)]
    with app.app_context():
        for user in users:
            for number in range(4):
                credits.place_hold(
                    db.session, user_id=user.id, amount=10, idempotency_key=f"h:{user.id}:{number}", ttl_s=1
                )
            credits.place_hold(db.session, user_id=user.id, amount=5, idempotency_key=f"live:{user.id}")
        db.session.remove()
    later = utcnow() + timedelta(seconds=30)

    ok, errors = outcomes(run_concurrently(app, 3, lambda session, index: credits.sweep_expired_holds(session, now=later)))
    assert not errors and sum(ok) == 12
    for user in users:
        after = state(app, user.id)
        assert (after["balance"], after["held"], after["active_holds"]) == (100, 5, 5)
        assert after["discrepancies"] == 0


def test_sqlite_writers_queue_for_the_write_lock_instead_of_failing_at_once(sqlite_app):
    from app.extensions import SQLITE_BUSY_TIMEOUT_MS

    with sqlite_app.app_context(), db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS == 30_000
