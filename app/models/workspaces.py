"""Workspaces: a person's personal one and the teams they belong to, with members and their caps.

Money belongs to an *account*: a row of `users`. A personal workspace's account is its person (their
balance, ledger and holds, exactly as before workspaces); a team workspace's account is a users row of
its own (`account_user_id`, login `team:<id>`, no GitHub link, so nobody can sign in as it). The ledger,
holds, balance lock and reconciliation therefore cover team pools with no change to their rules.
`member_id` on ledger entries and holds says which person spent a team's credits (per-member caps).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigIntId, ids_never_reused, table_args, utcnow

KIND_PERSONAL = "personal"
KIND_TEAM = "team"
ROLE_OWNER = "owner"
ROLE_ADMIN = "admin"
ROLE_MEMBER = "member"
ROLES = (ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER)
MEMBER_ACTIVE = "active"
MEMBER_PENDING = "pending"


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = ids_never_reused(table_args())

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), default=KIND_TEAM)
    # The account whose balance pays for this workspace's chats: the person for a personal workspace.
    account_user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    # Paid seats of the team plan (None: no team subscription).
    seats: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkspaceMember(Base):
    __tablename__ = "workspace_members"
    __table_args__ = table_args(
        Index("uq_workspace_members_workspace_id_login", "workspace_id", "login", unique=True),
        Index("ix_workspace_members_user_id", "user_id"),
        Index("ix_workspace_members_login_status", "login", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"))
    # None while the invitation is pending (the login has never signed in).
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    # GitHub login, lower-cased: how an invitation finds its person at their first sign-in.
    login: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), default=ROLE_MEMBER)
    # Credits this member may spend from the team's pool per calendar month (UTC); None: no cap.
    monthly_cap: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=MEMBER_ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
