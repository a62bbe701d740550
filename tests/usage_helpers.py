"""Charging replies for usage tests through the real ledger (hold, then settle), optionally on past days."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from app.extensions import db
from app.models import CreditHold, LedgerEntry
from app.models.base import utcnow
from app.services import credits
from app.services.usage import reconcile


def charge_reply(app, key: str, *, account_id: int, cost: int, tokens_in: int, tokens_out: int,
                 member_id: int | None = None, project_id: int | None = None, model: str = "gpt-5",
                 status: str = "complete", days_ago: int = 0) -> None:
    """A reply's charge as `finish_reply` posts it: a hold on the account (with its member), settled.
    A charge `days_ago` is moved back on the ledger only: `rebuild_rollups` then counts it on that day."""
    with app.app_context():
        hold = credits.place_hold(db.session, user_id=account_id, amount=cost, idempotency_key=f"hold:{key}")
        if member_id is not None:
            db.session.execute(update(CreditHold).where(CreditHold.id == hold.id).values(member_id=member_id))
            db.session.commit()
        meta = {"tokens_in": tokens_in, "tokens_out": tokens_out, "status": status}
        if project_id is not None:
            meta["project_id"] = project_id
        credits.settle_hold(db.session, hold_id=hold.id, charge=cost, idempotency_key=f"chat:{key}", meta=meta,
                            model=model)
        if days_ago:
            db.session.execute(update(LedgerEntry).where(LedgerEntry.idempotency_key == f"chat:{key}")
                               .values(created_at=utcnow() - timedelta(days=days_ago)))
            db.session.commit()
        db.session.remove()


def rebuild_rollups(app) -> int:
    """Rewrite the rollups from the ledger (after backdating entries); how many rows changed."""
    with app.app_context():
        changed = len(reconcile.reconcile_usage(db.session, fix=True))
        db.session.remove()
    return changed
