"""What a workspace's usage page shows, in one call: its rows, their total, the chart's credits per day and
model, and the members it may be filtered by. Owners and admins only (`policy`'s `view_usage`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import WorkspaceMember
from app.models.workspaces import MEMBER_ACTIVE
from app.services import policy
from app.services.credits.history import DailyUsage
from app.services.usage import report


@dataclass(frozen=True)
class TeamUsagePage:
    workspace_id: int
    workspace_name: str
    role: str
    query: report.UsageQuery
    rows: list[report.UsageRow]
    total: report.UsageRow
    daily: list[DailyUsage]
    member_logins: list[str]


def team_usage_page(session: Session, *, user_id: int, workspace_id: int, query: report.UsageQuery) -> TeamUsagePage:
    """The page's figures, all read from the rollups. 404 for a non-member, 403 for a member (`policy`)."""
    found = policy.require(session, user_id, "view_usage", workspace_id)
    account_id = found.workspace.account_user_id
    rows = report.account_usage(session, account_id=account_id, query=query)
    logins = sorted(session.execute(select(WorkspaceMember.login).where(
        WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.status == MEMBER_ACTIVE)).scalars(),
        key=str.casefold)
    if query.member_login and query.member_login.lower() not in {login.lower() for login in logins}:
        logins.append(query.member_login)  # a removed member's past usage can still be asked for
    return TeamUsagePage(
        workspace_id=workspace_id, workspace_name=found.workspace.name, role=found.role, query=query, rows=rows,
        total=report.total_row(rows), daily=report.daily_credits_by_model(session, account_id=account_id, query=query),
        member_logins=logins)
