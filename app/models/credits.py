"""The credit ledger: append-only entries, the per-user balance they keep in step, and holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigIntId, ids_never_reused, table_args, utcnow


class CreditBalance(Base):
    """One row per user, updated in the same transaction as every ledger entry and hold.

    Reading a balance is one primary-key lookup whatever the ledger's size; `flask credits reconcile`
    proves `balance` equals the sum of the user's entries.
    """

    __tablename__ = "credit_balances"
    __table_args__ = table_args()

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # Sum of the user's active holds: available = balance - held.
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = ids_never_reused(table_args(
        Index("ix_ledger_entries_user_id_id", "user_id", "id"),
        Index("ix_ledger_entries_user_id_created_at", "user_id", "created_at"),
        Index("ix_ledger_entries_user_id_member_id_created_at", "user_id", "member_id", "created_at"),
    ))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    # Nulled when the account is deleted: entries stay, anonymised, for accounting.
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    # For a team pool's entries: the person who spent (or granted) them. None on personal accounts.
    member_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    delta: Mapped[int] = mapped_column(BigInteger)
    # signup, chat, plan_grant, admin_grant, refund, adjustment
    reason: Mapped[str] = mapped_column(String(32))
    # One key per outside event (invoice id, message id, callback): a second post is a no-op.
    idempotency_key: Mapped[str] = mapped_column(String(191), unique=True)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    # The model a chat charge paid for, as a column so the usage chart groups without JSON functions.
    model: Mapped[str | None] = mapped_column(String(100))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CreditHold(Base):
    """Credits reserved before a provider call; settled with real usage or released."""

    __tablename__ = "credit_holds"
    __table_args__ = table_args(
        Index("ix_credit_holds_user_id_status", "user_id", "status"),
        Index("ix_credit_holds_status_expires_at", "status", "expires_at"),
        Index("ix_credit_holds_user_id_member_id_status", "user_id", "member_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    # For a hold on a team pool: the member whose send it is (their monthly cap counts it).
    member_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    amount: Mapped[int] = mapped_column(BigInteger)
    # active, settled, released, expired
    status: Mapped[str] = mapped_column(String(16), default="active")
    idempotency_key: Mapped[str] = mapped_column(String(191), unique=True)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
