"""A team's pool and its members' monthly caps.

The exact-cap rule: a member's send on a team project is refused when their settled spending this month
plus their active holds on the pool plus the new hold would pass their cap. It is checked and the hold
placed in one transaction, under the pool's balance lock (`credits.lock_balance(pool account)`: a row
lock on MariaDB, the database write lock on SQLite). Every hold, settle and release on the pool takes
that same lock first, so no other send, settle or release of the pool can run between the check and the
hold: 50 concurrent sends from 5 members can neither overdraw the pool nor pass a cap. Lock order:
pool balance, then holds (the ledger's order); a transfer locks the two balances by ascending id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InsufficientCredits, InvalidRequest
from app.models import CreditBalance, CreditHold, LedgerEntry, Project, User, Workspace, WorkspaceMember
from app.models.base import utcnow
from app.models.workspaces import KIND_TEAM, MEMBER_ACTIVE, ROLE_ADMIN, ROLE_OWNER
from app.services import policy
from app.services.credits.holds import HOLD_ACTIVE
from app.services.credits.ledger import REASON_CHAT, credit_summary
from app.services.credits.transfers import transfer_credits


@dataclass(frozen=True)
class PoolCharge:
    """Who pays for a send: the account whose balance is held and charged, and the member whose cap counts
    (None outside a team)."""

    account_id: int
    member_id: int | None
    workspace_id: int | None
    monthly_cap: int | None


def month_start(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def payer_for_send(session: Session, *, user_id: int, project: Project | None) -> PoolCharge:
    """The account a send is held and charged on: the team's pool for a team project (the caller already
    passed the access door), the person's own balance otherwise."""
    if project is None or project.workspace_id is None:
        return PoolCharge(user_id, None, None, None)
    row = session.execute(
        select(Workspace.kind, Workspace.account_user_id, WorkspaceMember.monthly_cap)
        .join(WorkspaceMember, WorkspaceMember.workspace_id == Workspace.id)
        .where(Workspace.id == project.workspace_id, WorkspaceMember.user_id == user_id,
               WorkspaceMember.status == MEMBER_ACTIVE)
    ).first()
    if row is None or row.kind != KIND_TEAM:
        return PoolCharge(user_id, None, None, None)
    return PoolCharge(row.account_user_id, user_id, project.workspace_id, row.monthly_cap)


def member_spending(session: Session, *, account_id: int, member_id: int, since: datetime) -> tuple[int, int]:
    """(settled chat spending since `since`, active holds) of one member on a pool. Exact only under the
    pool's balance lock (READ COMMITTED: each statement sees what has committed)."""
    settled = session.execute(
        select(func.coalesce(func.sum(-LedgerEntry.delta), 0)).where(
            LedgerEntry.user_id == account_id, LedgerEntry.member_id == member_id,
            LedgerEntry.reason == REASON_CHAT, LedgerEntry.created_at >= since)
    ).scalar_one()
    held = session.execute(
        select(func.coalesce(func.sum(CreditHold.amount), 0)).where(
            CreditHold.user_id == account_id, CreditHold.member_id == member_id, CreditHold.status == HOLD_ACTIVE)
    ).scalar_one()
    return int(settled), int(held)


def cap_room_in_transaction(session: Session, payer: PoolCharge) -> int | None:
    """Credits the member may still hold this month (None: no cap). Call under the pool's balance lock."""
    if payer.member_id is None or payer.monthly_cap is None:
        return None
    settled, held = member_spending(session, account_id=payer.account_id, member_id=payer.member_id,
                                    since=month_start())
    return max(payer.monthly_cap - settled - held, 0)


def raisers_of_cap(session: Session, workspace_id: int) -> list[str]:
    """The logins of the team's owners and admins: who can raise a cap."""
    return list(session.execute(
        select(WorkspaceMember.login).where(
            WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.status == MEMBER_ACTIVE,
            WorkspaceMember.role.in_((ROLE_OWNER, ROLE_ADMIN))).order_by(WorkspaceMember.login)
    ).scalars())


def member_cap_refusal(session: Session, payer: PoolCharge, *, needed: int, room: int) -> InsufficientCredits:
    """The 402 a member sees at their cap: whose cap, how much is left, who can raise it."""
    login = session.execute(select(User.login).where(User.id == payer.member_id)).scalar_one()
    team = session.execute(select(Workspace.name).where(Workspace.id == payer.workspace_id)).scalar_one()
    raisers = ", ".join(raisers_of_cap(session, payer.workspace_id)) or "the team's owners"
    return InsufficientCredits(
        f"This reply may cost up to {needed:,} credits, and {login}'s monthly cap in {team} "
        f"({payer.monthly_cap:,} credits) has {room:,} left this month. {raisers} can raise it.",
        reason="member_cap", needed=needed, available=room,
    )


def check_member_cap_in_transaction(session: Session, payer: PoolCharge, amount: int) -> None:
    """Refuse (`InsufficientCredits`, reason `member_cap`) a hold of `amount` that would pass the member's
    cap. Call under the pool's balance lock, before the hold is placed in the same transaction. Never
    commits; the caller rolls back on the refusal."""
    room = cap_room_in_transaction(session, payer)
    if room is not None and amount > room:
        raise member_cap_refusal(session, payer, needed=amount, room=room)


@dataclass(frozen=True)
class MemberSpending:
    login: str
    spent_this_month: int
    monthly_cap: int | None


@dataclass(frozen=True)
class PoolSummary:
    balance: int
    held: int
    members: list[MemberSpending]


def pool_summary(session: Session, *, user_id: int, workspace_id: int) -> PoolSummary:
    """A team's pool and each member's settled spending this month. Members see it too (their cap)."""

    found = policy.require(session, user_id, "view", workspace_id)
    account_id = found.workspace.account_user_id
    totals = credit_summary(session, account_id)
    spent = dict(session.execute(
        select(LedgerEntry.member_id, func.sum(-LedgerEntry.delta)).where(
            LedgerEntry.user_id == account_id, LedgerEntry.reason == REASON_CHAT,
            LedgerEntry.created_at >= month_start()).group_by(LedgerEntry.member_id)).all())
    members = session.execute(select(WorkspaceMember).where(WorkspaceMember.workspace_id == workspace_id)
                              .order_by(WorkspaceMember.login)).scalars().all()
    return PoolSummary(totals.balance, totals.held, [
        MemberSpending(m.login, int(spent.get(m.user_id, 0) or 0) if m.user_id else 0, m.monthly_cap)
        for m in members])


def grant_to_pool(session: Session, *, user_id: int, workspace_id: int, amount: object, request_key: str) -> int:
    """An owner or admin moves credits from their personal balance to the team's pool. Commits; returns
    the pool's balance. `request_key` makes a retried request a no-op."""
    found = policy.require(session, user_id, "grant_credits", workspace_id)
    if found.workspace.kind != KIND_TEAM:
        raise InvalidRequest("Credits are moved to a team's pool, not to a personal workspace.")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidRequest("amount must be a whole number of credits.", fields={"amount": "not a whole number"})
    return transfer_credits(session, from_account=user_id, to_account=found.workspace.account_user_id,
                            amount=amount, idempotency_key=f"team-grant:{workspace_id}:{request_key}",
                            member_id=user_id, note=f"to {found.workspace.name}")


@dataclass(frozen=True)
class WorkspaceLine:
    id: int
    name: str
    kind: str
    members: int
    balance: int


def workspace_lines(session: Session) -> list[WorkspaceLine]:
    """Every workspace with its active members and its account's balance, for operators. Two queries."""
    members = dict(session.execute(
        select(WorkspaceMember.workspace_id, func.count()).where(WorkspaceMember.status == MEMBER_ACTIVE)
        .group_by(WorkspaceMember.workspace_id)).all())
    rows = session.execute(
        select(Workspace.id, Workspace.name, Workspace.kind, func.coalesce(CreditBalance.balance, 0))
        .outerjoin(CreditBalance, CreditBalance.user_id == Workspace.account_user_id).order_by(Workspace.id)).all()
    return [WorkspaceLine(wid, name, kind, int(members.get(wid, 0)), int(balance)) for wid, name, kind, balance in rows]
