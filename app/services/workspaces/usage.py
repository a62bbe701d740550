"""A team's usage, grouped by member, project, model or day, from its pool's chat charges.

Read from the ledger within a bounded date range (at most `MAX_RANGE_DAYS`): correct, but a scan of the
range's entries; daily rollups maintained in the settling transaction are the planned replacement."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidRequest
from app.models import ChatMessage, LedgerEntry, Project, User
from app.services import policy
from app.services.credits.ledger import REASON_CHAT

GROUPS = ("member", "project", "model", "day")
MAX_RANGE_DAYS = 92


@dataclass
class UsageRow:
    key: str
    tokens_in: int = 0
    tokens_out: int = 0
    credits: int = 0
    replies: int = 0


def parse_day(raw: str | None, name: str, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date like 2026-12-01.", fields={name: "not a date"}) from None


def team_usage(session: Session, *, user_id: int, workspace_id: int, start: date, end: date,
               group_by: str) -> list[UsageRow]:
    """Owners and admins only (`view_usage`). `start`..`end` inclusive, UTC days. Rows by credits spent."""
    if group_by not in GROUPS:
        raise InvalidRequest("group_by is member, project, model or day.", fields={"group_by": "unknown grouping"})
    if end < start or (end - start).days > MAX_RANGE_DAYS:
        raise InvalidRequest(f"Choose a range of at most {MAX_RANGE_DAYS} days, from before to.",
                             fields={"from": "range"})
    found = policy.require(session, user_id, "view_usage", workspace_id)
    return account_usage(session, account_id=found.workspace.account_user_id, start=start, end=end,
                         group_by=group_by)


def account_usage(session: Session, *, account_id: int, start: date, end: date, group_by: str) -> list[UsageRow]:
    """`team_usage` without the rights check: for operators (`flask usage report`)."""
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    until = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    entries = session.execute(
        select(LedgerEntry.member_id, LedgerEntry.model, LedgerEntry.created_at, LedgerEntry.delta, LedgerEntry.meta)
        .where(LedgerEntry.user_id == account_id, LedgerEntry.reason == REASON_CHAT,
               LedgerEntry.created_at >= since, LedgerEntry.created_at < until)
    ).all()
    names = _key_names(session, entries, group_by)
    rows: dict[str, UsageRow] = defaultdict(lambda: UsageRow(""))
    for member_id, model, created_at, delta, meta in entries:
        meta = meta or {}
        key = _row_key(group_by, names, member_id, model, created_at, meta)
        row = rows[key]
        row.key = key
        row.tokens_in += int(meta.get("tokens_in") or 0)
        row.tokens_out += int(meta.get("tokens_out") or 0)
        row.credits += -int(delta)
        row.replies += 1
    return sorted(rows.values(), key=lambda r: (-r.credits, r.key))


def _row_key(group_by: str, names: dict, member_id, model, created_at, meta: dict) -> str:
    if group_by == "member":
        return names.get(member_id, "(removed)")
    if group_by == "model":
        return model or "(unknown)"
    if group_by == "day":
        return created_at.date().isoformat()
    return names.get(meta.get("message_id"), "(no project)")


def _key_names(session: Session, entries, group_by: str) -> dict:
    if group_by == "member":
        ids = {e.member_id for e in entries if e.member_id is not None}
        return dict(session.execute(select(User.id, User.login).where(User.id.in_(ids))).all()) if ids else {}
    if group_by == "project":
        message_ids = {(e.meta or {}).get("message_id") for e in entries} - {None}
        if not message_ids:
            return {}
        return dict(session.execute(
            select(ChatMessage.id, Project.name).join(Project, Project.id == ChatMessage.project_id)
            .where(ChatMessage.id.in_(message_ids))).all())
    return {}
