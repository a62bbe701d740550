"""The credit ledger: every change to a balance is an append-only entry with a unique idempotency key.

Rules this module guarantees:
- A user's `CreditBalance.balance` always equals the sum of their ledger entries' deltas: each entry and
  the balance update are written in one transaction, under a row lock on the balance (`SELECT ... FOR
  UPDATE` on MySQL/MariaDB; SQLite serialises writers on its own).
- The same idempotency key never posts twice, even when two connections race: the unique index decides,
  and the loser returns the winner's entry.
- A balance never goes below zero: a negative delta larger than the balance is clamped (for admin
  corrections) or refused (for charges), as the caller asks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import CreditBalance, CreditHold, LedgerEntry
from app.models.base import utcnow
from app.services.errors import InsufficientCredits

log = logging.getLogger(__name__)

REASON_SIGNUP = "signup"
REASON_CHAT = "chat"
REASON_PLAN_GRANT = "plan_grant"
REASON_ADMIN_GRANT = "admin_grant"
REASON_REFUND = "refund"
REASON_ADJUSTMENT = "adjustment"
HOLD_ACTIVE = "active"
HOLD_SETTLED = "settled"
HOLD_RELEASED = "released"
HOLD_EXPIRED = "expired"

REASONS = (REASON_SIGNUP, REASON_CHAT, REASON_PLAN_GRANT, REASON_ADMIN_GRANT, REASON_REFUND, REASON_ADJUSTMENT)


@dataclass(frozen=True)
class Posting:
    """The outcome of `post_ledger_entry`: the entry, and whether this call created it."""

    entry: LedgerEntry
    created: bool


def lock_balance(session: Session, user_id: int) -> CreditBalance:
    """The user's balance row, locked for this transaction; created at zero when missing."""
    row = session.execute(
        select(CreditBalance).where(CreditBalance.user_id == user_id).with_for_update()
    ).scalar_one_or_none()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(CreditBalance(user_id=user_id, balance=0, held=0))
    except IntegrityError:
        pass  # Another transaction created it first; lock theirs.
    return session.execute(
        select(CreditBalance).where(CreditBalance.user_id == user_id).with_for_update()
    ).scalar_one()


def read_balance(session: Session, user_id: int) -> CreditBalance | None:
    """One primary-key read, whatever the ledger's size."""
    return session.get(CreditBalance, user_id)


def find_entry(session: Session, idempotency_key: str) -> LedgerEntry | None:
    return session.execute(
        select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key)
    ).scalar_one_or_none()


def _append_entry(
    session: Session,
    balance: CreditBalance,
    *,
    delta: int,
    reason: str,
    idempotency_key: str,
    meta: dict[str, Any] | None,
    model: str | None,
) -> LedgerEntry:
    """Add one entry and move the locked balance with it; the caller commits."""
    if reason not in REASONS:
        raise ValueError(f"Unknown ledger reason {reason!r}.")
    if not isinstance(delta, int) or isinstance(delta, bool):
        raise TypeError("Credits are whole numbers.")
    balance.balance += delta
    entry = LedgerEntry(
        user_id=balance.user_id,
        delta=delta,
        reason=reason,
        idempotency_key=idempotency_key,
        balance_after=balance.balance,
        model=model,
        meta=dict(meta or {}),
    )
    session.add(entry)
    return entry


def _commit_or_winner(session: Session, idempotency_key: str) -> LedgerEntry | None:
    """Commit; when the idempotency key's unique index says another post won, return that post."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        winner = find_entry(session, idempotency_key)
        if winner is None:
            raise
        return winner
    return None


def post_ledger_entry(
    session: Session,
    *,
    user_id: int,
    delta: int,
    reason: str,
    idempotency_key: str,
    meta: dict[str, Any] | None = None,
    model: str | None = None,
    allow_clamp: bool = False,
) -> Posting:
    """Append one entry and move the balance with it, exactly once per `idempotency_key`. Commits.

    A negative delta larger than the available balance (balance minus holds) raises
    `InsufficientCredits`, unless `allow_clamp` (operator corrections), which posts only what takes
    the balance to zero.
    """
    existing = find_entry(session, idempotency_key)
    if existing is not None:
        return Posting(existing, created=False)

    balance = lock_balance(session, user_id)
    # Re-check under the lock: a concurrent poster of the same key may have committed meanwhile.
    existing = find_entry(session, idempotency_key)
    if existing is not None:
        session.rollback()
        return Posting(existing, created=False)

    entry_meta = dict(meta or {})
    if delta < 0 and balance.balance + delta < 0:
        if not allow_clamp:
            available = balance.balance
            session.rollback()
            raise InsufficientCredits(f"This needs {-delta:,} credits but the balance is {available:,}.")
        entry_meta["requested_delta"] = delta
        delta = -balance.balance
    entry = _append_entry(
        session, balance, delta=delta, reason=reason, idempotency_key=idempotency_key,
        meta=entry_meta, model=model,
    )
    winner = _commit_or_winner(session, idempotency_key)
    if winner is not None:
        return Posting(winner, created=False)
    log.info("ledger: user=%s reason=%s delta=%s entry=%s", user_id, reason, delta, entry.id)
    return Posting(entry, created=True)


# -- prices --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """Credits per 1,000 input tokens and per 1,000 output tokens."""

    per_1k_in: int
    per_1k_out: int


def price_for_model(model: str, model_prices: dict[str, tuple[int, int]], default_per_1k: int) -> Price:
    """The model's own price from MODEL_PRICES, else CREDITS_PER_1K_TOKENS for both directions."""
    per_1k_in, per_1k_out = model_prices.get(model, (default_per_1k, default_per_1k))
    return Price(per_1k_in, per_1k_out)


def reply_cost(tokens_in: int, tokens_out: int, price: Price) -> int:
    """ceil((tokens_in * price_in + tokens_out * price_out) / 1000), in whole credits."""
    milli_credits = tokens_in * price.per_1k_in + tokens_out * price.per_1k_out
    return -(-milli_credits // 1000)


# -- holds ---------------------------------------------------------------------------------------

HOLD_TTL_S = 15 * 60


def find_hold(session: Session, idempotency_key: str) -> CreditHold | None:
    return session.execute(
        select(CreditHold).where(CreditHold.idempotency_key == idempotency_key)
    ).scalar_one_or_none()


def place_hold(
    session: Session,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    message_id: int | None = None,
    ttl_s: int = HOLD_TTL_S,
) -> CreditHold:
    """Reserve `amount` credits before a provider call. Commits; idempotent per key.

    Raises `InsufficientCredits` when the available balance (balance minus active holds) cannot cover
    it. Under the balance row lock, so concurrent holds can never together exceed the balance.
    """
    if amount < 0:
        raise ValueError("A hold cannot be negative.")
    existing = find_hold(session, idempotency_key)
    if existing is not None:
        return existing
    balance = lock_balance(session, user_id)
    available = balance.balance - balance.held
    if amount > available:
        session.rollback()
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
        expires_at=utcnow() + timedelta(seconds=ttl_s),
    )
    balance.held += amount
    session.add(hold)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        winner = find_hold(session, idempotency_key)
        if winner is None:
            raise
        return winner
    return hold


def _lock_active_hold(session: Session, hold_id: int) -> tuple[CreditHold, CreditBalance] | None:
    hold = session.get(CreditHold, hold_id)
    if hold is None:
        return None
    # Balance first, then the hold: the same lock order as place_hold, so the two never deadlock.
    balance = lock_balance(session, hold.user_id)
    hold = session.execute(
        select(CreditHold).where(CreditHold.id == hold_id).with_for_update()
    ).scalar_one()
    session.refresh(hold)
    if hold.status != HOLD_ACTIVE:
        session.rollback()
        return None
    return hold, balance


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

    Idempotent: settling a hold that is no longer active returns the entry posted under the key (or
    None). The charge is capped at the balance, which never goes below zero; the shortfall is kept
    in the entry's meta. A zero charge posts no entry.
    """
    if charge < 0:
        raise ValueError("A charge cannot be negative.")
    locked = _lock_active_hold(session, hold_id)
    if locked is None:
        return find_entry(session, idempotency_key)
    hold, balance = locked
    balance.held -= hold.amount
    hold.status = HOLD_SETTLED
    hold.closed_at = utcnow()
    entry = None
    charged = min(charge, balance.balance)
    if charged > 0:
        entry_meta = dict(meta or {}, hold_id=hold.id, held=hold.amount)
        if charged < charge:
            entry_meta["uncollected"] = charge - charged
        entry = _append_entry(
            session, balance, delta=-charged, reason=reason, idempotency_key=idempotency_key,
            meta=entry_meta, model=model,
        )
    winner = _commit_or_winner(session, idempotency_key)
    if winner is not None:
        return winner
    log.info("ledger: settled hold=%s user=%s charge=%s", hold.id, hold.user_id, charged)
    return entry


def release_hold(session: Session, *, hold_id: int, status: str = "released") -> bool:
    """Release a hold without charging (the call failed before any output). Commits; idempotent.

    Returns True when this call released it.
    """
    locked = _lock_active_hold(session, hold_id)
    if locked is None:
        return False
    hold, balance = locked
    balance.held -= hold.amount
    hold.status = status
    hold.closed_at = utcnow()
    session.commit()
    return True


def sweep_expired_holds(session: Session, *, now: datetime | None = None) -> int:
    """Release holds whose process died before settling them (past `expires_at`). Commits each.

    Safe to run from several processes at once: each release re-checks the hold under its lock.
    """
    now = now or utcnow()
    expired_ids = session.execute(
        select(CreditHold.id).where(CreditHold.status == HOLD_ACTIVE, CreditHold.expires_at < now)
    ).scalars().all()
    session.rollback()
    return sum(1 for hold_id in expired_ids if release_hold(session, hold_id=hold_id, status=HOLD_EXPIRED))


# -- accounts ------------------------------------------------------------------------------------


def detach_ledger_entries(session: Session, user_id: int) -> int:
    """Keep a deleted account's ledger entries for accounting, with no user attached. Does not commit.

    What `ON DELETE SET NULL` does on MariaDB, done explicitly so SQLite (no foreign keys enforced)
    keeps the same rows. Amounts and balances are untouched: the balance row goes with the account.
    """
    result = session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.user_id == user_id)
        .values(user_id=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
