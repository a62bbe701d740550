"""Reading the ledger: pages of entries, every entry for an export, and spending per day."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.models import LedgerEntry
from app.models.base import utcnow
from app.services.credits.ledger import REASON_CHAT, REASON_REFUND

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

