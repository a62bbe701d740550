"""What the account page shows: the account, its GitHub link and its credits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import GithubAccount, User
from app.services import credits
from app.services.accounts.github_token import TOKEN_REVOKED


@dataclass(frozen=True)
class AccountOverview:
    user: User
    github: GithubAccount | None
    balance: int
    held: int

    @property
    def scopes(self) -> list[str]:
        return [s for s in (self.github.scopes.split(",") if self.github else []) if s]

    @property
    def github_revoked(self) -> bool:
        return self.github is not None and self.github.token_status == TOKEN_REVOKED


def account_overview(session: Session, user_id: int) -> AccountOverview:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such account.")
    github = session.execute(select(GithubAccount).where(GithubAccount.user_id == user_id)).scalar_one_or_none()
    balance = credits.read_balance(session, user_id)
    return AccountOverview(
        user=user,
        github=github,
        balance=balance.balance if balance else 0,
        held=balance.held if balance else 0,
    )
