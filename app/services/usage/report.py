"""Usage as people read it: rows grouped by member, project, model or day, the chart's credits per day and
model, and a person's own spending per project. Every query reads `usage_daily` over a range of days (the
rollups' primary key leads with account and day), never the ledger, so a page costs the same on a ledger of
ten thousand entries or of millions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidRequest
from app.models import Project, UsageDaily, User
from app.models.usage import NO_MODEL, NO_PROJECT
from app.services import policy
from app.services.credits.history import UNKNOWN_MODEL, DailyUsage
from app.services.usage.rollups import AMOUNT_COLUMNS, Amounts

GROUPS = ("member", "project", "model", "day")
# Columns a table may be sorted by; `key` is the row's name (or day), the rest are amounts.
SORTS = ("key", "replies", "failed_replies", "stopped_replies", "tokens_in", "tokens_out", "credits")
MAX_RANGE_DAYS = 92
NO_PROJECT_NAME = "(no project)"
DELETED_PROJECT_NAME = "(deleted project)"
REMOVED_MEMBER_NAME = "(removed)"
NO_MEMBER_NAME = "(no member)"

AMOUNTS = AMOUNT_COLUMNS
GROUP_COLUMNS = {"member": UsageDaily.member_id, "project": UsageDaily.project_id, "model": UsageDaily.model,
                 "day": UsageDaily.day}


@dataclass
class UsageRow(Amounts):
    """A table row: its name (a member's login, a project's name, a model, a day) and its amounts."""

    key: str = ""
    # The member's login on a member row (the page's drill-down link filters by it), else None.
    member_login: str | None = None


@dataclass(frozen=True)
class UsageQuery:
    """What a usage page or report asks for: a range of UTC days (inclusive), one member or all, a grouping
    and an order. Built by `usage_query`, which says what is wrong with bad input."""

    start: date
    end: date
    group_by: str = "member"
    member_login: str | None = None
    sort: str = "credits"
    descending: bool = True

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def parse_day(raw: str | None, name: str, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidRequest(f"{name} must be a date like 2026-12-01.", fields={name: "not a date"}) from None


def usage_query(*, start: date, end: date, group_by: str | None = None, member_login: str | None = None,
                sort: str | None = None, direction: str | None = None) -> UsageQuery:
    """A checked `UsageQuery`: `InvalidRequest` (400) naming the field for an unknown grouping or order or a
    range that runs backwards or beyond `MAX_RANGE_DAYS`."""
    group_by = group_by or "member"
    if group_by not in GROUPS:
        raise InvalidRequest("group_by is member, project, model or day.", fields={"group_by": "unknown grouping"})
    sort = sort or "credits"
    if sort not in SORTS:
        raise InvalidRequest(f"sort is one of {', '.join(SORTS)}.", fields={"sort": "unknown column"})
    if direction not in (None, "", "asc", "desc"):
        raise InvalidRequest("dir is asc or desc.", fields={"dir": "unknown direction"})
    if end < start:
        raise InvalidRequest("The range must end on or after its first day.", fields={"to": "before from"})
    if (end - start).days >= MAX_RANGE_DAYS:
        raise InvalidRequest(f"Choose a range of at most {MAX_RANGE_DAYS} days.", fields={"from": "range too long"})
    descending = direction == "desc" if direction else sort != "key"
    return UsageQuery(start=start, end=end, group_by=group_by, member_login=(member_login or "").strip() or None,
                      sort=sort, descending=descending)


def team_account(session: Session, *, user_id: int, workspace_id: int) -> int:
    """The workspace's ledger account, for owners and admins (`view_usage`): 404 for a non-member, 403 for
    a member."""
    return policy.require(session, user_id, "view_usage", workspace_id).workspace.account_user_id


def team_usage(session: Session, *, user_id: int, workspace_id: int, query: UsageQuery) -> list[UsageRow]:
    """`account_usage` of a workspace's pool, for its owners and admins only."""
    return account_usage(session, account_id=team_account(session, user_id=user_id, workspace_id=workspace_id),
                         query=query)


def _member_id(session: Session, login: str | None) -> int | None:
    if login is None:
        return None
    found = session.execute(select(User.id).where(func.lower(User.login) == login.lower())).scalar_one_or_none()
    if found is None:
        raise InvalidRequest(f"Nobody signs in as {login!r}: choose one of the team's members.",
                             fields={"member": "unknown login"})
    return found


def _range_filter(account_id: int, query: UsageQuery, member_id: int | None) -> list:
    conditions = [UsageDaily.account_id == account_id, UsageDaily.day >= query.start, UsageDaily.day <= query.end]
    if member_id is not None:
        conditions.append(UsageDaily.member_id == member_id)
    return conditions


def _sums() -> list:
    return [func.sum(getattr(UsageDaily, name)).label(name) for name in AMOUNTS]


def account_usage(session: Session, *, account_id: int, query: UsageQuery) -> list[UsageRow]:
    """The account's usage over the query's days, one row per member, project, model or day, in the query's
    order. No rights check: `team_usage` for people, this for operators (`flask usage report`)."""
    member_id = _member_id(session, query.member_login)
    column = GROUP_COLUMNS[query.group_by]
    found = session.execute(
        select(column.label("group_key"), *_sums())
        .where(*_range_filter(account_id, query, member_id)).group_by(column)
    ).all()
    names = _names(session, query.group_by, {row.group_key for row in found})
    rows = [_row(query.group_by, names, row) for row in found]
    return sort_rows(rows, query.sort, query.descending)


def _row(group_by: str, names: dict, found) -> UsageRow:
    amounts = {name: int(getattr(found, name) or 0) for name in AMOUNTS}
    key = found.group_key
    if group_by == "day":
        label = key.isoformat() if isinstance(key, date) else str(key)
    elif group_by == "model":
        label = key or UNKNOWN_MODEL
    else:
        label = names.get(key, _missing_name(group_by, key))
    login = label if group_by == "member" and key in names else None
    return UsageRow(key=label, member_login=login, **amounts)


def _missing_name(group_by: str, key: int) -> str:
    if group_by == "project":
        return NO_PROJECT_NAME if key == NO_PROJECT else DELETED_PROJECT_NAME
    return REMOVED_MEMBER_NAME if key else NO_MEMBER_NAME


def _names(session: Session, group_by: str, keys: set) -> dict:
    ids = {key for key in keys if key}
    if not ids:
        return {}
    if group_by == "member":
        return dict(session.execute(select(User.id, User.login).where(User.id.in_(ids))).all())
    if group_by == "project":
        return dict(session.execute(select(Project.id, Project.name).where(Project.id.in_(ids))).all())
    return {}


def sort_rows(rows: list[UsageRow], sort: str, descending: bool) -> list[UsageRow]:
    """Rows by `sort`, ties by name; names compare without case."""
    if sort == "key":
        return sorted(rows, key=lambda row: row.key.casefold(), reverse=descending)
    ordered = sorted(rows, key=lambda row: row.key.casefold())
    return sorted(ordered, key=lambda row: getattr(row, sort), reverse=descending)


def total_row(rows: list[UsageRow], label: str = "Total") -> UsageRow:
    total = UsageRow(key=label)
    for row in rows:
        total.add(row)
    return total


def daily_credits_by_model(session: Session, *, account_id: int, query: UsageQuery) -> list[DailyUsage]:
    """Credits per day and model over the query's days (the chart), for one member or all."""
    member_id = _member_id(session, query.member_login)
    found = session.execute(
        select(UsageDaily.day, UsageDaily.model, func.sum(UsageDaily.credits).label("credits"))
        .where(*_range_filter(account_id, query, member_id)).group_by(UsageDaily.day, UsageDaily.model)
    ).all()
    return sorted((DailyUsage(day=row.day, model=row.model or UNKNOWN_MODEL, credits=int(row.credits))
                   for row in found if row.credits), key=lambda item: (item.day, item.model))


def own_usage_by_project(session: Session, *, user_id: int, start: date, end: date) -> list[UsageRow]:
    """What a person spent per project over `start`..`end`: on their own account, and on the teams' pools
    where they were the member who spent. Biggest first. Two queries, one per index (an OR of the two
    columns would scan)."""
    sums: dict[int, UsageRow] = {}
    for mine in (UsageDaily.account_id == user_id, UsageDaily.member_id == user_id):
        found = session.execute(
            select(UsageDaily.project_id.label("group_key"), *_sums())
            .where(mine, UsageDaily.day >= start, UsageDaily.day <= end).group_by(UsageDaily.project_id)
        ).all()
        for row in found:
            sums.setdefault(row.group_key, UsageRow()).add(_row("project", {}, row))
    names = _names(session, "project", set(sums))
    for project_id, row in sums.items():
        row.key = names.get(project_id, _missing_name("project", project_id))
    return sort_rows(list(sums.values()), "credits", True)


__all__ = ["GROUPS", "MAX_RANGE_DAYS", "NO_MODEL", "SORTS", "UsageQuery", "UsageRow", "account_usage",
           "daily_credits_by_model", "own_usage_by_project", "parse_day", "sort_rows", "team_account", "team_usage",
           "total_row", "usage_query"]
