"""The credit ledger: every change to a balance is an append-only entry with a unique idempotency key.

Rules this module guarantees:
- A user's `CreditBalance.balance` always equals the sum of their ledger entries' deltas, and
  `CreditBalance.held` the sum of their active holds: each change is written in one transaction, under
  a row lock on the balance (`SELECT ... FOR UPDATE` on MySQL/MariaDB; SQLite serialises writers on its
  own). Every function that locks takes the balance row first and a hold second, so they never deadlock.
- The same idempotency key never posts twice, even when two connections race: posts for one user are
  serialised by the balance lock and re-check the key under it; the unique index settles anything else,
  and the loser returns the winner's entry.
- A balance never goes below zero. A charge never takes the *available* balance (balance minus active
  holds) below zero either, so every active hold stays covered: a charge beyond it is refused
  (`InsufficientCredits`, 402), or collected up to what is available when it settles a hold for a reply
  already delivered (the shortfall is kept in the entry's meta as `uncollected`).
- Operator corrections (`allow_clamp`) may take the balance down to exactly zero, never below.

Conventional `meta` keys, which the usage page and the CSV export describe in words: `message_id`,
`project_id`, `tokens_in`, `tokens_out` (chat); `plan`, `invoice_id` (plan grants); `note` (operator
grants, refunds, adjustments); `requested_delta`, `uncollected`, `hold_id`, `held` (written here).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import CreditBalance, CreditHold, LedgerEntry
from app.models.base import utcnow
from app.services.errors import Conflict, InsufficientCredits, NotFound

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

# The idempotency_key columns are VARCHAR(191): the longest a unique utf8mb4 index takes everywhere.
IDEMPOTENCY_KEY_MAX_CHARS = 191
# Far above any real grant or charge, far below BIGINT: a typo of a few extra zeros is refused.
MAX_CREDITS_PER_ENTRY = 10**12
NOTE_MAX_CHARS = 500


@dataclass(frozen=True)
class Posting:
    """The outcome of `post_ledger_entry`: the entry, and whether this call created it."""

    entry: LedgerEntry
    created: bool


@dataclass(frozen=True)
class CreditSummary:
    """What a person sees in the header and on the usage page."""

    balance: int
    held: int

    @property
    def available(self) -> int:
        return max(self.balance - self.held, 0)


def _check_credits(amount: Any, what: str) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"{what} must be a whole number of credits.")
    if abs(amount) > MAX_CREDITS_PER_ENTRY:
        raise ValueError(f"{what} of {amount:,} credits is beyond the largest single entry allowed.")


def _check_key(idempotency_key: str) -> None:
    if not idempotency_key or len(idempotency_key) > IDEMPOTENCY_KEY_MAX_CHARS:
        raise ValueError(f"An idempotency key must have 1 to {IDEMPOTENCY_KEY_MAX_CHARS} characters.")


def lock_balance(session: Session, user_id: int) -> CreditBalance:
    """The user's balance row, locked for this transaction and freshly read; created at zero when missing."""
    query = (
        select(CreditBalance)
        .where(CreditBalance.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = session.execute(query).scalar_one_or_none()
    if row is not None:
        return row
    _insert_zero_balance(session, user_id)
    return session.execute(query).scalar_one()


def _insert_zero_balance(session: Session, user_id: int) -> None:
    """Create the balance row at zero unless a concurrent transaction already did; never raises for that.

    On MySQL, `ON DUPLICATE KEY UPDATE` takes an exclusive lock on the existing row where a plain
    INSERT's duplicate-key error would leave a shared one, and two transactions holding shared locks
    that both go on to `SELECT ... FOR UPDATE` deadlock.
    """
    values = {"user_id": user_id, "balance": 0, "held": 0, "updated_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        statement = mysql_insert(CreditBalance).values(**values)
        statement = statement.on_duplicate_key_update(user_id=statement.inserted.user_id)
    else:  # SQLite, the embedded default: one writer at a time, so this only guards a retried call.
        statement = sqlite_insert(CreditBalance).values(**values).on_conflict_do_nothing()
    session.execute(statement)


def read_balance(session: Session, user_id: int) -> CreditBalance | None:
    """One primary-key read, whatever the ledger's size."""
    return session.get(CreditBalance, user_id)


def credit_summary(session: Session, user_id: int) -> CreditSummary:
    """The user's balance and held credits: one primary-key lookup, none when this session already has
    the row (a signed-in request loads it with its user)."""
    row = read_balance(session, user_id)
    if row is None:
        return CreditSummary(balance=0, held=0)
    return CreditSummary(balance=int(row.balance), held=int(row.held))


def find_entry(session: Session, idempotency_key: str) -> LedgerEntry | None:
    return session.execute(
        select(LedgerEntry)
        .where(LedgerEntry.idempotency_key == idempotency_key)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _same_user_or_conflict(entry: LedgerEntry, user_id: int) -> LedgerEntry:
    # Keys are per outside event; one reused for another account is a bug that must not pass silently.
    if entry.user_id is not None and entry.user_id != user_id:
        raise Conflict("This idempotency key was already used for another account.")
    return entry


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

    Locks the user's balance row. A second post with the same key (sequential or concurrent) returns
    the first entry with `created=False` and changes nothing. A negative delta larger than the
    available balance (balance minus active holds) raises `InsufficientCredits`, unless `allow_clamp`
    (operator corrections), which posts the whole delta when the balance covers it and otherwise only
    what takes the balance to zero (the requested delta is kept in meta).
    """
    if reason not in REASONS:
        raise ValueError(f"Unknown ledger reason {reason!r}.")
    _check_credits(delta, "A ledger delta")
    _check_key(idempotency_key)
    existing = find_entry(session, idempotency_key)
    if existing is not None:
        return Posting(_same_user_or_conflict(existing, user_id), created=False)

    balance = lock_balance(session, user_id)
    # Re-check under the lock: a concurrent poster of the same key may have committed meanwhile.
    existing = find_entry(session, idempotency_key)
    if existing is not None:
        session.rollback()
        return Posting(_same_user_or_conflict(existing, user_id), created=False)

    entry_meta = dict(meta or {})
    available = balance.balance - balance.held
    if delta < 0 and allow_clamp and balance.balance + delta < 0:
        entry_meta["requested_delta"] = delta
        delta = -balance.balance
    elif delta < 0 and not allow_clamp and available + delta < 0:
        session.rollback()
        raise InsufficientCredits(
            f"This needs {-delta:,} credits and you have {max(available, 0):,} available. "
            "Choose a plan to get more credits.",
            needed=-delta,
            available=max(available, 0),
        )
    entry = _append_entry(
        session, balance, delta=delta, reason=reason, idempotency_key=idempotency_key,
        meta=entry_meta, model=model,
    )
    winner = _commit_or_winner(session, idempotency_key)
    if winner is not None:
        return Posting(_same_user_or_conflict(winner, user_id), created=False)
    log.info("ledger: user=%s reason=%s delta=%s entry=%s", user_id, reason, delta, entry.id)
    return Posting(entry, created=True)


def grant_credits(
    session: Session, *, user_id: int, amount: int, note: str, idempotency_key: str, source: str = "cli"
) -> Posting:
    """An operator's grant (positive, `admin_grant`) or correction (negative, `adjustment`). Commits.

    Idempotent per key. A negative amount never takes the balance below zero: it is clamped there and
    the requested amount is kept in meta. `note` says why, for the person reading their ledger.
    """
    _check_credits(amount, "A grant")
    if amount == 0:
        raise ValueError("A grant of zero credits changes nothing.")
    note = " ".join(note.split())
    if not note:
        raise ValueError("Say why, so the ledger explains itself.")
    if len(note) > NOTE_MAX_CHARS:
        raise ValueError(f"Keep the note to {NOTE_MAX_CHARS} characters.")
    reason = REASON_ADMIN_GRANT if amount > 0 else REASON_ADJUSTMENT
    return post_ledger_entry(
        session, user_id=user_id, delta=amount, reason=reason, idempotency_key=idempotency_key,
        meta={"note": note, "source": source}, allow_clamp=True,
    )


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
    """ceil((tokens_in * price_in + tokens_out * price_out) / 1000), in whole credits (integer maths)."""
    if tokens_in < 0 or tokens_out < 0:
        raise ValueError("Token counts cannot be negative.")
    milli_credits = tokens_in * price.per_1k_in + tokens_out * price.per_1k_out
    return -(-milli_credits // 1000)


def max_reply_cost(prompt_tokens: int, max_completion_tokens: int, price: Price) -> int:
    """The most a reply may cost: the whole prompt plus the request's `max_completion_tokens`.

    What a hold reserves before the provider call; the real usage settles it.
    """
    return reply_cost(prompt_tokens, max_completion_tokens, price)


# Tokenisers give 3-4 characters per token for English and code; one token per 3 UTF-8 bytes errs high,
# so a hold sized from it covers the real prompt, and the settle refunds the difference at once.
BYTES_PER_TOKEN_ESTIMATE = 3
# Chat framing (roles, separators) the provider counts on top of the text.
TOKENS_PER_MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    """A deliberately generous token count for `text`, to size a hold before the provider answers."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN_ESTIMATE) + TOKENS_PER_MESSAGE_OVERHEAD


# -- holds ---------------------------------------------------------------------------------------

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
    """Reserve `amount` credits before a provider call. Commits; idempotent per key.

    `new_key=True` says no hold can have this key yet (it names a row the caller's own uncommitted
    transaction just created), which skips the two look-ups of an earlier hold; the unique index on the
    key still refuses a duplicate.

    `locked_balance` is the user's balance row the caller already locked with `lock_balance` in this
    same transaction (to size the hold from what is available): the hold is placed under that lock
    instead of taking it again.

    Raises `InsufficientCredits` (402) when the available balance (balance minus active holds) cannot
    cover it. Under the balance row lock, so concurrent holds can never together exceed the balance.
    In passing it releases a few of the user's holds left past their expiry by a crashed process, so a
    crash never blocks the next request until the sweep runs.
    """
    _check_credits(amount, "A hold")
    if amount < 0:
        raise ValueError("A hold cannot be negative.")
    _check_key(idempotency_key)
    if not new_key:
        existing = find_hold(session, idempotency_key)
        if existing is not None:
            return existing
    if locked_balance is not None:
        if locked_balance.user_id != user_id:
            raise ValueError("The locked balance belongs to another user.")
        balance = locked_balance
    else:
        balance = lock_balance(session, user_id)
    if not new_key:
        existing = find_hold(session, idempotency_key)
        if existing is not None:
            session.rollback()
            return existing
    now = utcnow()
    if not _holds_nothing(balance):
        _expire_user_holds_locked(session, balance, now, OPPORTUNISTIC_SWEEP_LIMIT)
    available = balance.balance - balance.held
    if amount > available:
        session.commit()  # keeps the expiries above; places nothing
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
    try:
        session.flush()
        hold_id = hold.id  # read before the commit expires it (reading it after costs a SELECT)
        session.commit()
    except IntegrityError:
        session.rollback()
        winner = find_hold(session, idempotency_key)
        if winner is None:
            raise
        return winner
    log.info("ledger: hold=%s user=%s amount=%s", hold_id, user_id, amount)
    return hold


def hold_for_request(
    session: Session,
    *,
    user_id: int,
    prompt_tokens: int,
    max_completion_tokens: int,
    price: Price,
    idempotency_key: str,
    message_id: int | None = None,
    ttl_s: int = HOLD_TTL_S,
) -> CreditHold:
    """Place the hold a provider call needs: `max_reply_cost` of its prompt and completion limit.

    Same guarantees as `place_hold` (commits, idempotent per key, 402 when the available balance is short).
    """
    amount = max_reply_cost(prompt_tokens, max_completion_tokens, price)
    return place_hold(
        session, user_id=user_id, amount=amount, idempotency_key=idempotency_key,
        message_id=message_id, ttl_s=ttl_s,
    )


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


# -- reading the ledger --------------------------------------------------------------------------

LEDGER_PAGE_DEFAULT = 50
LEDGER_PAGE_MAX = 100


@dataclass(frozen=True)
class LedgerPage:
    """Entries newest first; `next_before` is the cursor for the next (older) page, None on the last."""

    entries: list[LedgerEntry]
    next_before: int | None


def _newest_entries(user_id: int, before: int | None, limit: int) -> Select:
    """Up to `limit` of the user's entries older than entry `before`, newest first (index user_id, id)."""
    query = select(LedgerEntry).where(LedgerEntry.user_id == user_id)
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    return query.order_by(LedgerEntry.id.desc()).limit(limit)


def list_ledger_entries(
    session: Session, user_id: int, *, limit: int = LEDGER_PAGE_DEFAULT, before: int | None = None
) -> LedgerPage:
    """One page of the user's ledger, newest first, by keyset on the entry id (index user_id, id).

    Each page costs the same however deep it is: no OFFSET. `before` is an entry id (exclusive).
    """
    limit = max(1, min(limit, LEDGER_PAGE_MAX))
    rows = session.execute(_newest_entries(user_id, before, limit + 1)).scalars().all()
    entries = list(rows[:limit])
    next_before = entries[-1].id if len(rows) > limit else None
    return LedgerPage(entries=entries, next_before=next_before)


def iter_ledger_entries(session: Session, user_id: int, *, batch_size: int = 1000) -> Iterator[LedgerEntry]:
    """Every entry of the user's ledger, newest first, fetched in keyset batches (flat memory, for exports)."""
    before = None
    while True:
        batch = session.execute(_newest_entries(user_id, before, batch_size)).scalars().all()
        yield from batch
        if len(batch) < batch_size:
            return
        before = batch[-1].id
        # Entries are read-only here; letting the identity map drop them keeps memory flat.
        for entry in batch:
            session.expunge(entry)


@dataclass(frozen=True)
class DailyUsage:
    """Credits spent on one UTC day with one model."""

    day: date
    model: str
    credits: int


UNKNOWN_MODEL = "unknown model"


def daily_usage(session: Session, user_id: int, *, days: int = 30, today: date | None = None) -> list[DailyUsage]:
    """Credits spent per UTC day and model over the last `days` days (today included), oldest first.

    Spending is chat charges net of refunds that name a model; days and models with nothing spent are
    left out. Reads the (user_id, created_at) index only over the window.
    """
    today = today or utcnow().date()
    start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)
    day_column = func.date(LedgerEntry.created_at)
    rows = session.execute(
        select(day_column.label("day"), LedgerEntry.model, func.sum(LedgerEntry.delta).label("delta"))
        .where(
            LedgerEntry.user_id == user_id,
            LedgerEntry.created_at >= start,
            (LedgerEntry.reason == REASON_CHAT)
            | ((LedgerEntry.reason == REASON_REFUND) & LedgerEntry.model.is_not(None)),
        )
        .group_by(day_column, LedgerEntry.model)
    ).all()
    usage = []
    for row in rows:
        day = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day))
        spent = -int(row.delta or 0)
        if spent > 0 and day <= today:
            usage.append(DailyUsage(day=day, model=row.model or UNKNOWN_MODEL, credits=spent))
    return sorted(usage, key=lambda item: (item.day, item.model))


# -- reconciliation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Discrepancy:
    """A user whose stored balance or held credits differ from what the ledger and holds say."""

    user_id: int
    balance: int
    ledger_sum: int
    held: int
    active_holds: int


def _totals_by_user(session: Session, user_id: int | None = None) -> dict[int, tuple[int, int, int, int]]:
    """user_id -> (stored balance, ledger sum, stored held, active holds sum)."""
    balances = select(CreditBalance.user_id, CreditBalance.balance, CreditBalance.held)
    sums = select(LedgerEntry.user_id, func.sum(LedgerEntry.delta)).where(LedgerEntry.user_id.is_not(None))
    holds = select(CreditHold.user_id, func.sum(CreditHold.amount)).where(CreditHold.status == HOLD_ACTIVE)
    if user_id is not None:
        balances = balances.where(CreditBalance.user_id == user_id)
        sums = sums.where(LedgerEntry.user_id == user_id)
        holds = holds.where(CreditHold.user_id == user_id)
    stored = {row.user_id: (int(row.balance), int(row.held)) for row in session.execute(balances)}
    ledger = {uid: int(total or 0) for uid, total in session.execute(sums.group_by(LedgerEntry.user_id))}
    active = {uid: int(total or 0) for uid, total in session.execute(holds.group_by(CreditHold.user_id))}
    totals = {}
    for uid in stored.keys() | ledger.keys() | active.keys():
        balance, held = stored.get(uid, (0, 0))
        totals[uid] = (balance, ledger.get(uid, 0), held, active.get(uid, 0))
    return totals


def find_discrepancies(session: Session) -> list[Discrepancy]:
    """Every user whose balance differs from the sum of their ledger, or whose `held` differs from the
    sum of their active holds. Read-only (ends with a rollback).

    A first pass reads everything without locks; each user it flags is checked again under their
    balance lock, so a post landing between two reads of the first pass is never reported.
    """
    suspects = [
        uid for uid, (balance, ledger, held, active) in _totals_by_user(session).items()
        if balance != ledger or held != active
    ]
    session.rollback()
    found = []
    for uid in sorted(suspects):
        exists = session.execute(select(CreditBalance.user_id).where(CreditBalance.user_id == uid)).first()
        if exists is not None:
            session.execute(select(CreditBalance.user_id).where(CreditBalance.user_id == uid).with_for_update())
        balance, ledger, held, active = _totals_by_user(session, uid).get(uid, (0, 0, 0, 0))
        session.rollback()
        if balance != ledger or held != active:
            found.append(Discrepancy(uid, balance, ledger, held, active))
    return found


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
