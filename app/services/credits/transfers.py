"""Moving credits between two accounts (a person's balance to their team's pool) in one transaction."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from app.errors import InsufficientCredits, InvalidRequest
from app.services.credits.ledger import (
    REASON_ADMIN_GRANT,
    _append_entry,
    _check_credits,
    _check_key,
    find_entry,
    lock_balance,
)

log = logging.getLogger(__name__)


def transfer_credits(
    session: Session, *, from_account: int, to_account: int, amount: int, idempotency_key: str,
    member_id: int, note: str,
) -> int:
    """Move `amount` credits from one account's available balance to another's: two ledger entries
    (`admin_grant`, -amount and +amount) in one transaction, or none. Commits. Returns the receiving
    balance. Both balances are locked in ascending account order (the one order every two-balance
    transaction uses, so two transfers never deadlock; SQLite: its write lock). Idempotent per key.
    `InsufficientCredits` (reason `balance`) when the sender's available balance cannot cover it."""
    _check_credits(amount, "A transfer")
    _check_key(idempotency_key)
    if amount <= 0:
        raise InvalidRequest("Move a positive whole number of credits.", fields={"amount": "must be positive"})
    if from_account == to_account:
        raise InvalidRequest("An account cannot move credits to itself.")
    first, second = sorted((from_account, to_account))
    locked = {first: lock_balance(session, first), second: lock_balance(session, second)}
    if find_entry(session, f"{idempotency_key}:in") is not None:
        balance = locked[to_account].balance
        session.rollback()
        return balance
    sender, receiver = locked[from_account], locked[to_account]
    available = sender.balance - sender.held
    if amount > available:
        session.rollback()
        raise InsufficientCredits(
            f"Moving {amount:,} credits needs {amount:,} available on your balance; you have {max(available, 0):,}.",
            reason="balance", needed=amount, available=max(available, 0),
        )
    meta = {"note": note, "from_account": from_account, "to_account": to_account}
    out = _append_entry(session, sender, delta=-amount, reason=REASON_ADMIN_GRANT,
                        idempotency_key=f"{idempotency_key}:out", meta=meta, model=None)
    into = _append_entry(session, receiver, delta=amount, reason=REASON_ADMIN_GRANT,
                         idempotency_key=f"{idempotency_key}:in", meta=meta, model=None)
    into.member_id = member_id
    balance = receiver.balance
    session.commit()
    log.info("ledger: transfer %s -> %s amount=%s entries=%s,%s", from_account, to_account, amount, out.id, into.id)
    return balance
