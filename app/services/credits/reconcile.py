"""Reconciliation: stored balances and held credits against the ledger and the active holds."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import CreditBalance, CreditHold, LedgerEntry
from app.services.credits.holds import HOLD_ACTIVE
from app.services.credits.ledger import take_sqlite_write_lock


@dataclass(frozen=True)
class Discrepancy:
    """A user whose stored balance or held credits differ from what the ledger and holds say."""

    user_id: int
    balance: int
    ledger_sum: int
    held: int
    active_holds: int


def _totals_by_user(session: Session, user_id: int | None = None) -> dict[int, tuple[int, int, int, int]]:
    """user_id -> (stored balance, ledger sum, stored held, active holds sum)."""
    balances = select(CreditBalance.user_id, CreditBalance.balance, CreditBalance.held)
    sums = select(LedgerEntry.user_id, func.sum(LedgerEntry.delta)).where(LedgerEntry.user_id.is_not(None))
    holds = select(CreditHold.user_id, func.sum(CreditHold.amount)).where(CreditHold.status == HOLD_ACTIVE)
    if user_id is not None:
        balances = balances.where(CreditBalance.user_id == user_id)
        sums = sums.where(LedgerEntry.user_id == user_id)
        holds = holds.where(CreditHold.user_id == user_id)
    stored = {row.user_id: (int(row.balance), int(row.held)) for row in session.execute(balances)}
    ledger = {uid: int(total or 0) for uid, total in session.execute(sums.group_by(LedgerEntry.user_id))}
    active = {uid: int(total or 0) for uid, total in session.execute(holds.group_by(CreditHold.user_id))}
    totals = {}
    for uid in stored.keys() | ledger.keys() | active.keys():
        balance, held = stored.get(uid, (0, 0))
        totals[uid] = (balance, ledger.get(uid, 0), held, active.get(uid, 0))
    return totals


def find_discrepancies(session: Session) -> list[Discrepancy]:
    """Every user whose balance differs from the sum of their ledger, or whose `held` differs from the
    sum of their active holds. Read-only (ends with a rollback).

    A first pass reads everything without locks; each user it flags is checked again under their
    balance lock, so a post landing between two reads of the first pass is never reported.
    """
    suspects = [
        uid for uid, (balance, ledger, held, active) in _totals_by_user(session).items()
        if balance != ledger or held != active
    ]
    session.rollback()
    found = []
    for uid in sorted(suspects):
        take_sqlite_write_lock(session, uid)
        exists = session.execute(select(CreditBalance.user_id).where(CreditBalance.user_id == uid)).first()
        if exists is not None:
            session.execute(select(CreditBalance.user_id).where(CreditBalance.user_id == uid).with_for_update())
        balance, ledger, held, active = _totals_by_user(session, uid).get(uid, (0, 0, 0, 0))
        session.rollback()
        if balance != ledger or held != active:
            found.append(Discrepancy(uid, balance, ledger, held, active))
    return found

