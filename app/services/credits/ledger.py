"""The ledger itself: balances, entries, and the one function that posts an entry.

Rules this package guarantees:
- A user's `CreditBalance.balance` always equals the sum of their ledger entries' deltas, and
  `CreditBalance.held` the sum of their active holds: each change is written in one transaction, under
  the balance lock `lock_balance` takes (`SELECT ... FOR UPDATE` on MySQL/MariaDB; SQLite's database
  write lock, taken before the balance is read). Every function that locks takes the balance row first
  and a hold second, so they never deadlock.
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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InsufficientCredits
from app.models import CreditBalance, LedgerEntry
from app.models.base import utcnow
from app.services.usage import rollups

log = logging.getLogger(__name__)

REASON_SIGNUP = "signup"
REASON_CHAT = "chat"
REASON_PLAN_GRANT = "plan_grant"
REASON_ADMIN_GRANT = "admin_grant"
REASON_REFUND = "refund"
REASON_ADJUSTMENT = "adjustment"

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
    """The user's balance row, locked for this transaction and freshly read; created at zero when missing.

    MySQL/MariaDB: a row lock (`SELECT ... FOR UPDATE`). SQLite: the database's write lock (see
    `take_sqlite_write_lock`), so the rule is the same on both engines: no other transaction changes
    this balance until this one commits or rolls back.
    """
    take_sqlite_write_lock(session, user_id)
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


def take_sqlite_write_lock(session: Session, user_id: int) -> None:
    """On SQLite, take the database's write lock for this transaction before the balance is read.

    SQLite ignores `FOR UPDATE`, and its driver runs a SELECT outside any transaction, so two
    connections could read the same balance, each add its hold or charge in Python, and write over each
    other (a lost update: `held` drifted below zero and holds together exceeded the balance). A write
    statement makes the driver begin the transaction and SQLite grant this connection its single
    writer's lock, held until commit or rollback; a second writer waits for it (the busy timeout) just as
    a second `FOR UPDATE` waits for the row lock. The statement changes nothing. A no-op elsewhere.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(
        update(CreditBalance)
        .where(CreditBalance.user_id == user_id)
        .values(user_id=CreditBalance.user_id)
        .execution_options(synchronize_session=False)
    )


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
    member_id: int | None = None,
) -> LedgerEntry:
    """Add one entry and move the locked balance with it; a chat charge also counts into its day's usage
    rollup, in this same transaction, so rollups are exact. The caller commits."""
    balance.balance += delta
    entry = LedgerEntry(
        user_id=balance.user_id,
        member_id=member_id,
        delta=delta,
        reason=reason,
        idempotency_key=idempotency_key,
        balance_after=balance.balance,
        model=model,
        meta=dict(meta or {}),
        created_at=utcnow(),  # set here, not at the flush: the rollup's day is this entry's day
    )
    session.add(entry)
    if reason == REASON_CHAT:
        rollups.count_chat_charge(session, entry)
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
