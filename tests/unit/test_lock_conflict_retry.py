"""`retry_on_lock_conflict`: what it retries, how often, and what the session looks like afterwards."""

from __future__ import annotations

import pymysql
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from app.services.transactions import retry_on_lock_conflict


class CountingSession:
    """Stands in for a Session: the helper only ever rolls it back."""

    def __init__(self) -> None:
        self.rollbacks = 0

    def rollback(self) -> None:
        self.rollbacks += 1


def deadlock() -> OperationalError:
    """What SQLAlchemy raises when InnoDB picks the transaction as a deadlock victim."""
    return OperationalError(
        "UPDATE credit_balances SET held=%(held)s", {},
        pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction"),
    )


def failing(times: int, error_factory, result: str = "done"):
    calls = {"n": 0}

    def work() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error_factory()
        return result

    return work, calls


def test_two_deadlocks_then_success_returns_the_result_after_two_rollbacks():
    session = CountingSession()
    work, calls = failing(2, deadlock)
    assert retry_on_lock_conflict(session, work, attempts=3) == "done"
    assert calls["n"] == 3
    assert session.rollbacks == 2


def test_exhausted_attempts_reraise_the_last_conflict_with_the_session_rolled_back():
    session = CountingSession()
    work, calls = failing(5, deadlock)
    with pytest.raises(OperationalError) as raised:
        retry_on_lock_conflict(session, work, attempts=3)
    assert raised.value.orig.args[0] == 1213
    assert calls["n"] == 3
    assert session.rollbacks == 3


def test_a_lock_wait_timeout_is_retried_too():
    session = CountingSession()
    work, calls = failing(1, lambda: OperationalError(
        "SELECT 1", {}, pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")))
    assert retry_on_lock_conflict(session, work, attempts=2) == "done"
    assert calls["n"] == 2


def test_other_operational_errors_propagate_at_once_without_a_rollback():
    session = CountingSession()
    work, calls = failing(1, lambda: OperationalError(
        "SELECT 1", {}, pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")))
    with pytest.raises(OperationalError):
        retry_on_lock_conflict(session, work, attempts=3)
    assert calls["n"] == 1
    assert session.rollbacks == 0


def test_an_integrity_error_is_retried_only_when_the_caller_asks():
    def duplicate() -> IntegrityError:
        return IntegrityError("INSERT", {}, pymysql.err.IntegrityError(1062, "Duplicate entry"))

    work, calls = failing(1, duplicate)
    with pytest.raises(IntegrityError):
        retry_on_lock_conflict(CountingSession(), work, attempts=3)
    assert calls["n"] == 1

    session = CountingSession()
    work, calls = failing(1, duplicate)
    assert retry_on_lock_conflict(session, work, attempts=3, also_retry=(IntegrityError,)) == "done"
    assert (calls["n"], session.rollbacks) == (2, 1)


def test_at_least_one_attempt_is_required():
    with pytest.raises(ValueError):
        retry_on_lock_conflict(CountingSession(), lambda: None, attempts=0)
