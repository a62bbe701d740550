"""Holds: credits reserved before a provider call, settled by the real charge or released.

Every function that locks takes the balance row first and a hold second (the order `lock_balance`
then `_lock_hold`), so they never deadlock; `held` always equals the sum of the user's active holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import InsufficientCredits, NotFound
from app.models import CreditBalance, CreditHold, LedgerEntry
from app.models.base import utcnow
from app.services.credits.ledger import (
    REASON_CHAT,
    REASONS,
    _append_entry,
    _check_credits,
    _check_key,
    _commit_or_winner,
    find_entry,
    lock_balance,
    read_balance,
)

log = logging.getLogger(__name__)

HOLD_ACTIVE = "active"
HOLD_SETTLED = "settled"
HOLD_RELEASED = "released"
HOLD_EXPIRED = "expired"
HOLD_TTL_S = 15 * 60
# How many of a user's expired holds `place_hold` releases in passing: bounded so it stays cheap.
OPPORTUNISTIC_SWEEP_LIMIT = 20


def find_hold(session: Session, idempotency_key: str) -> CreditHold | None:
    return session.execute(
        select(CreditHold)
        .where(CreditHold.idempotency_key == idempotency_key)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _expire_user_holds_locked(session: Session, balance: CreditBalance, now: datetime, limit: int) -> int:
    """Expire the user's overdue active holds inside the caller's transaction, which holds the balance lock."""
    overdue = session.execute(
        select(CreditHold)
        .where(
            CreditHold.user_id == balance.user_id,
            CreditHold.status == HOLD_ACTIVE,
            CreditHold.expires_at < now,
        )
        .order_by(CreditHold.id)
        .limit(limit)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars().all()
    for hold in overdue:
        balance.held -= hold.amount
        hold.status = HOLD_EXPIRED
        hold.closed_at = now
        log.info("ledger: expired hold=%s user=%s amount=%s", hold.id, hold.user_id, hold.amount)
    return len(overdue)


def _holds_nothing(balance: CreditBalance | None) -> bool:
    """True when no active hold moves this balance, so overdue holds need no look-up: an overdue hold
    of zero credits changes nothing the user sees and is left to the sweep job."""
    return balance is None or not balance.held


def place_hold_in_transaction(
    session: Session,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    message_id: int | None = None,
    ttl_s: int = HOLD_TTL_S,
    new_key: bool = False,
    locked_balance: CreditBalance | None = None,
) -> CreditHold:
    """Reserve `amount` credits before a provider call, inside the caller's transaction. Never commits.

    The caller owns the transaction: it commits to keep the hold (with its own changes, such as the
    reply the hold pays for), and rolls back on any error, `InsufficientCredits` included. Idempotent per
    key: a hold already placed under `idempotency_key` is returned unchanged.

    `new_key=True` says no hold can have this key yet (it names a row the caller's own uncommitted
    transaction just created), which skips the two look-ups of an earlier hold; the unique index on the
    key still refuses a duplicate (an `IntegrityError` at the flush).

    `locked_balance` is the user's balance row the caller already locked with `lock_balance` in this
    same transaction (to size the hold from what is available): the hold is placed under that lock
    instead of taking it again.

    Raises `InsufficientCredits` (402) when the available balance (balance minus active holds) cannot
    cover it. Under the balance lock, so concurrent holds can never together exceed the balance.
    In passing it releases a few of the user's holds left past their expiry by a crashed process, so a
    crash never blocks the next request until the sweep runs.
    """
    hold, _ = _place_hold(
        session, user_id=user_id, amount=amount, idempotency_key=idempotency_key, message_id=message_id,
        ttl_s=ttl_s, new_key=new_key, locked_balance=locked_balance,
    )
    return hold


def place_hold(
    session: Session,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    message_id: int | None = None,
    ttl_s: int = HOLD_TTL_S,
    new_key: bool = False,
    locked_balance: CreditBalance | None = None,
) -> CreditHold:
    """`place_hold_in_transaction`, then commit. Idempotent per key.

    Commits whatever the session has pending along with the hold, and commits on a shortfall too
    (keeping the expiries done in passing) before raising `InsufficientCredits`. A caller with changes
    of its own that must not be committed on a shortfall uses `place_hold_in_transaction`.
    """
    try:
        hold, created = _place_hold(
            session, user_id=user_id, amount=amount, idempotency_key=idempotency_key, message_id=message_id,
            ttl_s=ttl_s, new_key=new_key, locked_balance=locked_balance,
        )
    except InsufficientCredits:
        session.commit()  # keeps the expiries; places nothing
        raise
    except IntegrityError as exc:
        return _hold_that_won(session, idempotency_key, exc)
    if not created:
        session.rollback()
        return hold
    try:
        session.commit()
    except IntegrityError as exc:
        return _hold_that_won(session, idempotency_key, exc)
    return hold


def _hold_that_won(session: Session, idempotency_key: str, error: IntegrityError) -> CreditHold:
    """After a duplicate key: the hold a concurrent transaction placed under `idempotency_key`."""
    session.rollback()
    winner = find_hold(session, idempotency_key)
    if winner is None:
        raise error
    return winner


def _place_hold(
    session: Session,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    message_id: int | None,
    ttl_s: int,
    new_key: bool,
    locked_balance: CreditBalance | None,
) -> tuple[CreditHold, bool]:
    """The hold under `idempotency_key`, and whether this call placed it (flushed, not committed)."""
    _check_credits(amount, "A hold")
    if amount < 0:
        raise ValueError("A hold cannot be negative.")
    _check_key(idempotency_key)
    if not new_key:
        existing = find_hold(session, idempotency_key)
        if existing is not None:
            return existing, False
    balance = _balance_for_hold(session, user_id, locked_balance)
    if not new_key:
        # Re-check under the lock: a concurrent placer of the same key may have committed meanwhile.
        existing = find_hold(session, idempotency_key)
        if existing is not None:
            return existing, False
    now = utcnow()
    if not _holds_nothing(balance):
        _expire_user_holds_locked(session, balance, now, OPPORTUNISTIC_SWEEP_LIMIT)
    available = balance.balance - balance.held
    if amount > available:
        raise InsufficientCredits(
            f"This reply may cost up to {amount:,} credits and you have {max(available, 0):,} available. "
            "Choose a plan to get more credits.",
            needed=amount,
            available=max(available, 0),
        )
    hold = CreditHold(
        user_id=user_id,
        amount=amount,
        status=HOLD_ACTIVE,
        idempotency_key=idempotency_key,
        message_id=message_id,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    balance.held += amount
    session.add(hold)
    session.flush()
    log.info("ledger: hold=%s user=%s amount=%s", hold.id, user_id, amount)
    return hold, True


def _balance_for_hold(session: Session, user_id: int, locked_balance: CreditBalance | None) -> CreditBalance:
    if locked_balance is None:
        return lock_balance(session, user_id)
    if locked_balance.user_id != user_id:
        raise ValueError("The locked balance belongs to another user.")
    return locked_balance


def _lock_hold(session: Session, hold_id: int, user_id: int | None = None) -> tuple[CreditHold, CreditBalance]:
    """The hold and its user's balance, both locked: balance first, the same order as `place_hold`.

    `user_id`: the hold's owner when the caller knows it, which saves looking it up first.
    """
    if user_id is None:
        user_id = session.execute(select(CreditHold.user_id).where(CreditHold.id == hold_id)).scalar_one_or_none()
        if user_id is None:
            raise NotFound(f"There is no credit hold {hold_id}.")
    balance = lock_balance(session, user_id)
    hold = session.execute(
        select(CreditHold)
        .where(CreditHold.id == hold_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if hold is None:
        raise NotFound(f"There is no credit hold {hold_id}.")
    if hold.user_id != user_id:
        raise ValueError(f"Credit hold {hold_id} belongs to another user.")
    return hold, balance


@dataclass(frozen=True)
class Settlement:
    """What `settle_hold_in_transaction` did.

    `posted`: this call closed the hold (and posted `entry`, None for a zero charge); False when the hold
    was already settled or the key already used, in which case `entry` is the earlier post (or None) and
    nothing changed. `balance`: the user's balance after this call's charge (None when nothing changed).
    """

    posted: bool
    entry: LedgerEntry | None
    balance: int | None
    charged: int = 0
    hold_id: int | None = None
    user_id: int | None = None


def settle_hold_in_transaction(
    session: Session,
    *,
    hold_id: int,
    charge: int,
    idempotency_key: str,
    reason: str = REASON_CHAT,
    meta: dict[str, Any] | None = None,
    model: str | None = None,
    user_id: int | None = None,
) -> Settlement:
    """`settle_hold`'s rule without its commit: the caller commits, so its own changes (a reply's end)
    land in the same transaction as the charge. See `settle_hold` for what is charged."""
    if reason not in REASONS:
        raise ValueError(f"Unknown ledger reason {reason!r}.")
    _check_credits(charge, "A charge")
    if charge < 0:
        raise ValueError("A charge cannot be negative.")
    _check_key(idempotency_key)
    hold, balance = _lock_hold(session, hold_id, user_id)
    if hold.status == HOLD_SETTLED:
        return Settlement(posted=False, entry=find_entry(session, idempotency_key), balance=None)
    if hold.status != HOLD_ACTIVE:
        # Only a hold that is no longer active can have had its charge posted under this key already
        # (a reply ended by a direct entry after its hold expired); an active one cannot.
        existing = find_entry(session, idempotency_key)
        if existing is not None:
            return Settlement(posted=False, entry=existing, balance=None)
    entry_meta = dict(meta or {}, hold_id=hold.id, held=hold.amount)
    if hold.status == HOLD_ACTIVE:
        balance.held -= hold.amount
    else:
        entry_meta["late"] = True
    hold.status = HOLD_SETTLED
    hold.closed_at = utcnow()
    charged = max(min(charge, balance.balance - balance.held), 0)
    entry = None
    if charged > 0:
        if charged < charge:
            entry_meta["uncollected"] = charge - charged
        entry = _append_entry(
            session, balance, delta=-charged, reason=reason, idempotency_key=idempotency_key,
            meta=entry_meta, model=model,
            member_id=hold.member_id,  # a team pool's charge counts against its member's cap
        )
    return Settlement(posted=True, entry=entry, balance=balance.balance, charged=charged,
                      hold_id=hold.id, user_id=hold.user_id)


def log_settlement(settlement: Settlement, charge: int) -> None:
    """The ledger's log line for a settled hold; written once its transaction has committed."""
    if settlement.posted:
        log.info("ledger: settled hold=%s user=%s charge=%s of %s",
                 settlement.hold_id, settlement.user_id, settlement.charged, charge)


def settle_hold(
    session: Session,
    *,
    hold_id: int,
    charge: int,
    idempotency_key: str,
    reason: str = REASON_CHAT,
    meta: dict[str, Any] | None = None,
    model: str | None = None,
) -> LedgerEntry | None:
    """Close a hold by charging the real cost and releasing the rest, in one transaction. Commits.

    Idempotent: a second settle (same key, or a hold already settled) changes nothing and returns the
    entry posted under the key (or None). The charge is collected up to the available balance once the
    hold is released, so the balance never goes below zero and the user's other holds stay covered; a
    shortfall is kept in the entry's meta as `uncollected`. A zero charge posts no entry.

    A hold that was already released or expired (the sweep ran while a slow reply was still finishing)
    is still charged for the usage it reports: the reply was delivered. Its meta says `late`.
    Raises `NotFound` for an unknown hold id.
    """
    settlement = settle_hold_in_transaction(
        session, hold_id=hold_id, charge=charge, idempotency_key=idempotency_key, reason=reason, meta=meta,
        model=model,
    )
    if not settlement.posted:
        session.rollback()
        return settlement.entry
    winner = _commit_or_winner(session, idempotency_key)
    if winner is not None:
        return winner
    log_settlement(settlement, charge)
    return settlement.entry


@dataclass(frozen=True)
class Release:
    """A hold `release_hold_in_transaction` released (plain values: they outlive the commit)."""

    hold_id: int
    user_id: int
    amount: int
    status: str


def release_hold_in_transaction(
    session: Session, *, hold_id: int, status: str = HOLD_RELEASED, user_id: int | None = None
) -> Release | None:
    """`release_hold`'s rule without its commit; None when the hold was already closed."""
    if status not in (HOLD_RELEASED, HOLD_EXPIRED):
        raise ValueError(f"A hold is released as 'released' or 'expired', not {status!r}.")
    hold, balance = _lock_hold(session, hold_id, user_id)
    if hold.status != HOLD_ACTIVE:
        return None
    balance.held -= hold.amount
    hold.status = status
    hold.closed_at = utcnow()
    return Release(hold_id=hold.id, user_id=hold.user_id, amount=hold.amount, status=status)


def log_release(release: Release | None) -> None:
    """The ledger's log line for a released hold; written once its transaction has committed."""
    if release is not None:
        log.info("ledger: %s hold=%s user=%s amount=%s", release.status, release.hold_id, release.user_id,
                 release.amount)


def release_hold(session: Session, *, hold_id: int, status: str = HOLD_RELEASED) -> bool:
    """Release a hold without charging (the call failed before any output). Commits; idempotent.

    Returns True when this call released it, False when it was already closed (settled, released or
    expired). `status` is `released`, or `expired` for the sweep. Raises `NotFound` for an unknown id.
    """
    release = release_hold_in_transaction(session, hold_id=hold_id, status=status)
    if release is None:
        session.rollback()
        return False
    session.commit()
    log_release(release)
    return True


def sweep_expired_holds(
    session: Session, *, now: datetime | None = None, user_id: int | None = None, limit: int | None = None
) -> int:
    """Release holds whose process died before settling them (past `expires_at`). Commits each.

    Returns how many this call released. Safe to run from several processes at once: each release
    re-checks the hold under its lock. `user_id` and `limit` bound it for opportunistic use.
    """
    if user_id is not None and _holds_nothing(read_balance(session, user_id)):
        return 0  # a signed-in request has the balance row loaded: this costs no query
    now = now or utcnow()
    query = select(CreditHold.id).where(CreditHold.status == HOLD_ACTIVE, CreditHold.expires_at < now)
    if user_id is not None:
        query = query.where(CreditHold.user_id == user_id)
    query = query.order_by(CreditHold.expires_at)
    if limit is not None:
        query = query.limit(limit)
    expired_ids = session.execute(query).scalars().all()
    if not expired_ids:
        return 0  # the common case: no rollback, so the caller's loaded objects stay loaded
    session.rollback()
    return sum(1 for hold_id in expired_ids if release_hold(session, hold_id=hold_id, status=HOLD_EXPIRED))

