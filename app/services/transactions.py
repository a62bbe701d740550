"""What every service that takes row locks needs to know about MySQL/MariaDB lock conflicts, and the one
way to retry a transaction that lost one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

T = TypeVar("T")

# 1213 deadlock and 1205 lock wait timeout roll the whole transaction back, so the work is safe to
# retry from the start. 1305 "SAVEPOINT does not exist" is how a deadlock inside a nested transaction
# (begin_nested) surfaces: InnoDB already rolled everything back, savepoint included.
LOCK_CONFLICT_CODES = frozenset({1205, 1213, 1305})


def is_lock_conflict(exc: BaseException) -> bool:
    """True when `exc` is a lock conflict that rolled the transaction back (retry from the start)."""
    if not isinstance(exc, OperationalError):
        return False
    args = getattr(exc.orig, "args", ())
    return bool(args) and args[0] in LOCK_CONFLICT_CODES


def retry_on_lock_conflict(
    session: Session,
    work: Callable[[], T],
    *,
    attempts: int,
    also_retry: tuple[type[Exception], ...] = (),
    backoff_s: float = 0.0,
    label: str | None = None,
) -> T:
    """Run `work()` (a whole transaction: it starts from nothing and commits or leaves the commit to the
    caller) and return what it returns, retrying it from the start after a lock conflict.

    Guarantees: `work` runs at most `attempts` times. After a lock conflict (or one of `also_retry`, such
    as the `IntegrityError` of a unique-index race the next attempt reads past) the session is rolled
    back before the next attempt, so each attempt sees what the winner committed; after the last
    attempt the session is rolled back and that conflict is raised. Any other exception propagates at
    once, and the session is left as `work` left it (the caller decides whether to roll back).
    `backoff_s` waits `backoff_s * attempt` seconds between attempts (none by default); `label` names the
    work in the log line of each retry (default: the function's name).
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1.")
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except (OperationalError, *also_retry) as exc:
            if not (is_lock_conflict(exc) or isinstance(exc, also_retry)):
                raise
            session.rollback()
            if attempt == attempts:
                raise
            log.info("%s lost a race (%s, attempt %s of %s); retrying",
                     label or getattr(work, "__name__", "work"), type(exc).__name__, attempt, attempts)
            if backoff_s:
                time.sleep(backoff_s * attempt)
    raise AssertionError("unreachable")
