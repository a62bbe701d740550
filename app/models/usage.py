"""Daily usage rollups: one row per account, member, project, model and UTC day, kept exact by the
transaction that posts each chat charge (`services/usage/rollups.py`), so usage pages read a few
thousand rows instead of scanning the ledger.

No foreign keys on purpose: a rollup outlives the project or member it names (usage stays accountable),
and "none" is 0 (member, project) or '' (model), never NULL: the key is the primary key, whose
columns cannot be NULL, and the upsert counts into the one row of a key.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, table_args

NO_MEMBER = 0
NO_PROJECT = 0
NO_MODEL = ""


class UsageDaily(Base):
    __tablename__ = "usage_daily"
    __table_args__ = table_args(
        # A person's own usage across the teams they spent in (their usage page).
        Index("ix_usage_daily_member_id_day", "member_id", "day"),
    )

    # The key is the primary key, led by (account, day): every page query reads one account over a range
    # of days, which InnoDB keeps together (its rows are clustered by primary key).
    # The ledger account the credits came from: a person, or a team's pool (`workspaces.account_user_id`).
    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(primary_key=True)
    # Who spent a team pool's credits; NO_MEMBER on personal accounts.
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False, default=NO_MEMBER)
    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False, default=NO_PROJECT)
    model: Mapped[str] = mapped_column(String(100), primary_key=True, default=NO_MODEL)
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    replies: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_replies: Mapped[int] = mapped_column(BigInteger, default=0)
    stopped_replies: Mapped[int] = mapped_column(BigInteger, default=0)
