"""Operator actions and listings: every account with its balance, finding one by login, disabling it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import CreditBalance, User, UserSession, Workspace
from app.models.base import utcnow
from app.models.workspaces import KIND_TEAM
from app.runtime import token_cache

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class UserSummary:
    id: int
    login: str
    plan: str
    balance: int
    disabled: bool


def list_users(session: Session) -> list[UserSummary]:
    """Every person's account with its balance, oldest first (one query). A team's pool is an account too
    (a `users` row nobody signs in as): `flask workspaces list` shows those, so they are left out here."""
    pools = select(Workspace.account_user_id).where(Workspace.kind == KIND_TEAM)
    rows = session.execute(
        select(User.id, User.login, User.plan, User.disabled_at, CreditBalance.balance)
        .outerjoin(CreditBalance, CreditBalance.user_id == User.id)
        .where(User.id.not_in(pools))
        .order_by(User.id)
    ).all()
    return [
        UserSummary(id=r.id, login=r.login, plan=r.plan, balance=r.balance or 0, disabled=r.disabled_at is not None)
        for r in rows
    ]


def get_user(session: Session, user_id: int) -> User | None:
    """The user with this id, disabled or not, or None."""
    return session.get(User, user_id)


def find_user_by_login(session: Session, login: str) -> User:
    """The account whose login is `login` (exact first, then case-insensitive), or `NotFound`."""
    user = session.execute(select(User).where(User.login == login)).scalar_one_or_none()
    if user is None:
        matches = session.execute(select(User).where(func.lower(User.login) == login.lower())).scalars().all()
        user = matches[0] if len(matches) == 1 else None
    if user is None:
        raise NotFound(f"No account has the login {login!r}.")
    return user


def disable_user(session: Session, login: str) -> User:
    """Block sign-in, sessions and API tokens for the account, keeping its data. Commits; idempotent.

    Its signed-in sessions are ended too, so enabling it again does not revive an old cookie.
    """
    user = find_user_by_login(session, login)
    if user.disabled_at is None:
        user.disabled_at = utcnow()
        session.execute(delete(UserSession).where(UserSession.user_id == user.id))
        session.commit()
        token_cache.forget_user(user.id)  # its API tokens are refused from the next call in this process
        log.info("user=%s disabled", user.id)
    return user


def enable_user(session: Session, login: str) -> User:
    """Undo `disable_user`. Commits; idempotent."""
    user = find_user_by_login(session, login)
    if user.disabled_at is not None:
        user.disabled_at = None
        session.commit()
        log.info("user=%s enabled", user.id)
    return user
