"""Accounts, their GitHub link and personal API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from flask_login import UserMixin
from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, BigIntId, ids_never_reused, table_args, utcnow

if TYPE_CHECKING:
    from app.models.credits import CreditBalance

PLAN_FREE = "free"
# What a personal API token may do: `read` calls only GET (and HEAD/OPTIONS); `write` may change things.
TOKEN_SCOPE_READ = "read"
TOKEN_SCOPE_WRITE = "write"
TOKEN_SCOPES = (TOKEN_SCOPE_READ, TOKEN_SCOPE_WRITE)


class User(UserMixin, Base):
    __tablename__ = "users"
    __table_args__ = ids_never_reused(table_args())

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    # The current GitHub login, refreshed at each sign-in; the stable key is GithubAccount.github_user_id.
    login: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    plan: Mapped[str] = mapped_column(String(20), default=PLAN_FREE)
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    github_account: Mapped[GithubAccount | None] = relationship(
        back_populates="user", uselist=False, cascade="all, delete-orphan", passive_deletes=True
    )
    # Loaded with the user, by a join on its primary key: every signed-in page shows the balance in its
    # header, and under load a second round trip per page costs more than the join. Read only here:
    # balances change through services/credits.py alone.
    credit_balance: Mapped[CreditBalance | None] = relationship(lazy="joined", viewonly=True, uselist=False)

    # The signed-in browser session this object was loaded for (`UserSession.id`), not a column: set by
    # the sign-in and by the session loader, so `get_id` names the session as well as the account.
    signed_in_session_id = None  # str once set; unannotated so the ORM does not map it

    @property
    def is_active(self) -> bool:  # Flask-Login: a disabled user cannot sign in or use a session.
        return self.disabled_at is None

    def get_id(self) -> str:
        """What Flask-Login stores in the session and remember cookies: "<user id>:<session id>".

        The cookie then dies with its server-side session (signed out here, signed out everywhere, the
        account deleted). Without a session id it is the bare user id, which loads nobody.
        """
        if self.signed_in_session_id is None:
            return str(self.id)
        return f"{self.id}:{self.signed_in_session_id}"


class GithubAccount(Base):
    __tablename__ = "github_accounts"
    __table_args__ = table_args()

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    # GitHub's numeric user id: logins can be renamed, this cannot.
    github_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    login: Mapped[str] = mapped_column(String(100))
    # AES-256-GCM ciphertext from services.crypto, bound to this user and purpose; never plain text.
    access_token_encrypted: Mapped[str] = mapped_column(Text)
    scopes: Mapped[str] = mapped_column(String(500), default="")
    # "valid" until GitHub answers 401 with the token; then the account page offers to reconnect.
    token_status: Mapped[str] = mapped_column(String(20), default="valid")
    token_checked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship(back_populates="github_account")


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = ids_never_reused(table_args(Index("ix_api_tokens_user_id_created_at", "user_id", "created_at")))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the token, shown in lists so a person can tell tokens apart.
    display_prefix: Mapped[str] = mapped_column(String(32))
    # SHA-256 hex of the whole token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # One of TOKEN_SCOPES; tokens made before scopes existed could do everything, hence "write".
    scope: Mapped[str] = mapped_column(String(10), default=TOKEN_SCOPE_WRITE, server_default=TOKEN_SCOPE_WRITE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    # None: never expires. From this moment on the token authenticates nobody.
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class UserSession(Base):
    """One signed-in browser. Its random id travels, with the user id, in the signed session cookie and
    the remember-me cookie; a cookie whose row is gone (signed out, signed out everywhere, the account
    deleted) signs nobody in, even when it was copied before."""

    __tablename__ = "user_sessions"
    __table_args__ = table_args(Index("ix_user_sessions_user_id_created_at", "user_id", "created_at"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
