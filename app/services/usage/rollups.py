"""The daily rollups' one rule: what a chat charge adds to `usage_daily`, written in the transaction that
posts the charge, so a rollup is exactly the sum of its ledger entries (the balance lock that serialises
an account's charges serialises its rollup rows too: no lost update, no deadlock between them).

A reply that cost nothing (it failed before writing anything, or the balance was empty) posts no ledger
entry and so counts in no rollup: usage is what was charged. `reconcile.py` recomputes the same sums
from the ledger with `contribution`, the function the live path uses.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.models import ChatMessage, LedgerEntry, UsageDaily
from app.models.chat import STATUS_FAILED, STATUS_STOPPED
from app.models.usage import NO_MEMBER, NO_MODEL, NO_PROJECT

MODEL_MAX_CHARS = 100
KEY_COLUMNS = ("account_id", "day", "member_id", "project_id", "model")


@dataclass(frozen=True)
class RollupKey:
    account_id: int
    day: date
    member_id: int
    project_id: int
    model: str


@dataclass
class Amounts:
    tokens_in: int = 0
    tokens_out: int = 0
    credits: int = 0
    replies: int = 0
    failed_replies: int = 0
    stopped_replies: int = 0

    def add(self, other: Amounts) -> None:
        """Add `other`'s amounts (only the amounts: a subclass's other fields stay as they are)."""
        for name in AMOUNT_COLUMNS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in AMOUNT_COLUMNS}


AMOUNT_COLUMNS = tuple(field.name for field in fields(Amounts))


def _count(meta: dict[str, Any], name: str) -> int:
    value = meta.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def contribution(*, account_id: int, member_id: int | None, project_id: int | None, model: str | None,
                 created_at: datetime, delta: int, meta: dict[str, Any] | None) -> tuple[RollupKey, Amounts]:
    """What one chat ledger entry adds to its rollup row: one reply, its tokens (from the entry's meta),
    the credits it took, and whether the reply failed or was stopped (`meta.status`)."""
    meta = meta if isinstance(meta, dict) else {}
    status = meta.get("status")
    key = RollupKey(account_id=account_id, day=created_at.date(), member_id=member_id or NO_MEMBER,
                    project_id=project_id or NO_PROJECT, model=(model or NO_MODEL)[:MODEL_MAX_CHARS])
    amounts = Amounts(tokens_in=_count(meta, "tokens_in"), tokens_out=_count(meta, "tokens_out"), credits=-delta,
                      replies=1, failed_replies=int(status == STATUS_FAILED),
                      stopped_replies=int(status == STATUS_STOPPED))
    return key, amounts


def meta_id(meta: dict[str, Any] | None, name: str) -> int | None:
    """The id a ledger entry's meta names under `name` (`project_id`, `message_id`), or None."""
    value = meta.get(name) if isinstance(meta, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def count_chat_charge(session: Session, entry: LedgerEntry) -> None:
    """Add a new chat charge to its day's rollup, in the caller's transaction (which holds the account's
    balance lock and commits both, or neither). Writes the reply's project into the entry's meta, so the
    ledger alone can rebuild this rollup after the reply or its project is gone."""
    meta = dict(entry.meta or {})
    project_id = meta_id(meta, "project_id")
    message_id = meta_id(meta, "message_id")
    if project_id is None and message_id is not None:
        project_id = session.execute(
            select(ChatMessage.project_id).where(ChatMessage.id == message_id)).scalar_one_or_none()
        if project_id is not None:
            meta["project_id"] = project_id
            entry.meta = meta
    key, amounts = contribution(account_id=entry.user_id, member_id=entry.member_id, project_id=project_id,
                                model=entry.model, created_at=entry.created_at, delta=entry.delta, meta=meta)
    add_to_rollup(session, key, amounts)


def add_to_rollup(session: Session, key: RollupKey, amounts: Amounts) -> None:
    """Create the rollup row or add to it, in one statement (an upsert on its primary key). Does not commit."""
    values = {**{name: getattr(key, name) for name in KEY_COLUMNS}, **amounts.as_dict()}
    table = UsageDaily.__table__
    if session.get_bind().dialect.name in ("mysql", "mariadb"):
        statement = mysql_insert(table).values(**values)
        statement = statement.on_duplicate_key_update(
            **{name: table.c[name] + statement.inserted[name] for name in AMOUNT_COLUMNS})
    else:
        statement = sqlite_insert(table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=list(KEY_COLUMNS),
            set_={name: table.c[name] + statement.excluded[name] for name in AMOUNT_COLUMNS})
    session.execute(statement)


def forget_person(session: Session, user_id: int) -> None:
    """When a person's account is deleted: their own rollups go with their detached ledger, and what they
    spent of a team's pool stays, as no member's (their ledger entries lose the member too). Does not commit."""
    table = UsageDaily.__table__
    session.execute(table.delete().where(table.c.account_id == user_id))
    spent = session.execute(select(table).where(table.c.member_id == user_id)).all()
    session.execute(table.delete().where(table.c.member_id == user_id))
    for row in spent:
        key = RollupKey(row.account_id, row.day, NO_MEMBER, row.project_id, row.model)
        add_to_rollup(session, key, Amounts(*(int(getattr(row, name)) for name in AMOUNT_COLUMNS)))
