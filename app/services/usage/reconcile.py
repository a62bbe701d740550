"""`flask usage reconcile`: recompute every account's daily rollups from its ledger, compare them with the
stored ones, and optionally rewrite those that drifted.

Each account is checked under its balance lock (`credits.lock_balance`), the lock every chat charge and
its rollup are written under, so a reply settling meanwhile is either wholly in both sides or in neither:
a running app never shows as drift, and a fix never loses a concurrent charge.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import ChatMessage, LedgerEntry, UsageDaily, User
from app.models.usage import NO_MEMBER
from app.services import credits
from app.services.usage.rollups import (
    AMOUNT_COLUMNS,
    KEY_COLUMNS,
    Amounts,
    RollupKey,
    contribution,
    meta_id,
)

BATCH_ENTRIES = 5000


@dataclass(frozen=True)
class UsageDrift:
    """One rollup row that differs from its ledger: `expected` None means the row should not exist,
    `stored` None that it is missing."""

    key: RollupKey
    expected: Amounts | None
    stored: Amounts | None


def _chat_entries(session: Session, account_id: int) -> Iterator[list]:
    """The account's chat charges in keyset batches of `BATCH_ENTRIES` (flat memory on any ledger)."""
    after = 0
    while True:
        batch = session.execute(
            select(LedgerEntry.id, LedgerEntry.member_id, LedgerEntry.model, LedgerEntry.delta, LedgerEntry.meta,
                   LedgerEntry.created_at)
            .where(LedgerEntry.user_id == account_id, LedgerEntry.reason == credits.REASON_CHAT,
                   LedgerEntry.id > after)
            .order_by(LedgerEntry.id).limit(BATCH_ENTRIES)
        ).all()
        if not batch:
            return
        yield batch
        after = batch[-1].id


def _projects_of(session: Session, batch: list) -> dict[int, int | None]:
    """Projects of the batch's replies whose entry predates `project_id` in its meta."""
    wanted = {meta_id(row.meta, "message_id") for row in batch if meta_id(row.meta, "project_id") is None} - {None}
    if not wanted:
        return {}
    return dict(session.execute(select(ChatMessage.id, ChatMessage.project_id).where(ChatMessage.id.in_(wanted))).all())


def expected_rollups(session: Session, account_id: int) -> dict[RollupKey, Amounts]:
    """The account's rollups as its ledger says they are (the same `contribution` as the live path)."""
    sums: dict[RollupKey, Amounts] = {}
    for batch in _chat_entries(session, account_id):
        projects = _projects_of(session, batch)
        for row in batch:
            project_id = meta_id(row.meta, "project_id")
            if project_id is None:
                project_id = projects.get(meta_id(row.meta, "message_id"))
            key, amounts = contribution(account_id=account_id, member_id=row.member_id, project_id=project_id,
                                        model=row.model, created_at=row.created_at, delta=row.delta, meta=row.meta)
            sums.setdefault(key, Amounts()).add(amounts)
    return _without_deleted_members(session, sums)


def _without_deleted_members(session: Session, sums: dict[RollupKey, Amounts]) -> dict[RollupKey, Amounts]:
    """A deleted person's spending counts as no member's (what `forget_person` does to the stored rows):
    MariaDB nulls their `member_id` on the ledger, SQLite keeps the dangling id; both read the same here."""
    members = {key.member_id for key in sums if key.member_id != NO_MEMBER}
    if not members:
        return sums
    alive = set(session.execute(select(User.id).where(User.id.in_(members))).scalars())
    merged: dict[RollupKey, Amounts] = {}
    for key, amounts in sums.items():
        if key.member_id not in alive:
            key = RollupKey(key.account_id, key.day, NO_MEMBER, key.project_id, key.model)
        merged.setdefault(key, Amounts()).add(amounts)
    return merged


def stored_rollups(session: Session, account_id: int) -> dict[RollupKey, Amounts]:
    found = session.execute(select(UsageDaily.__table__).where(UsageDaily.account_id == account_id)).all()
    return {RollupKey(*(getattr(row, name) for name in ("account_id", "day", "member_id", "project_id", "model"))):
            Amounts(*(int(getattr(row, name)) for name in AMOUNT_COLUMNS)) for row in found}


def _accounts(session: Session) -> list[int]:
    charged = session.execute(select(LedgerEntry.user_id).where(
        LedgerEntry.reason == credits.REASON_CHAT, LedgerEntry.user_id.is_not(None)).distinct()).scalars()
    rolled = session.execute(select(UsageDaily.account_id).distinct()).scalars()
    return sorted(set(charged) | set(rolled))


def reconcile_account(session: Session, account_id: int, *, fix: bool) -> list[UsageDrift]:
    """The account's drifted rollup rows, found (and rewritten when `fix`) under its balance lock.
    Commits when it fixed something, else ends its transaction with a rollback."""
    if session.get(User, account_id) is not None:
        credits.lock_balance(session, account_id)
    expected = expected_rollups(session, account_id)
    stored = stored_rollups(session, account_id)
    drift = [UsageDrift(key, expected.get(key), stored.get(key)) for key in sorted(
        set(expected) | set(stored), key=lambda k: (k.day, k.member_id, k.project_id, k.model))
        if expected.get(key) != stored.get(key)]
    if not (fix and drift):
        session.rollback()
        return drift
    _rewrite(session, drift)
    session.commit()
    return drift


def _rewrite(session: Session, drift: list[UsageDrift]) -> None:
    """Delete the drifted rows that exist, then insert the ledger's, many rows per statement (a rebuild after
    a migration writes thousands). Under the account's balance lock nobody else writes its rows meanwhile."""
    for item in drift:
        if item.stored is not None:
            session.execute(delete(UsageDaily).where(
                *(getattr(UsageDaily, name) == getattr(item.key, name) for name in KEY_COLUMNS)))
    rows = [{**{name: getattr(item.key, name) for name in KEY_COLUMNS}, **item.expected.as_dict()}
            for item in drift if item.expected is not None]
    for start in range(0, len(rows), BATCH_ENTRIES):
        session.execute(UsageDaily.__table__.insert(), rows[start:start + BATCH_ENTRIES])


def reconcile_usage(session: Session, *, fix: bool = False) -> list[UsageDrift]:
    """Every account's drifted rollup rows (see `reconcile_account`); one transaction per account."""
    drift: list[UsageDrift] = []
    for account_id in _accounts(session):
        drift.extend(reconcile_account(session, account_id, fix=fix))
    return drift
