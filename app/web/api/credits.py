"""The credits part of the JSON API: `GET /api/credits` (balance, held, available) and
`GET /api/credits/ledger` (the ledger, newest first, a page at a time)."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask_login import current_user, login_required

from app.extensions import db
from app.models import LedgerEntry
from app.services import credits
from app.web.api import bp, int_arg


def entry_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "delta": entry.delta,
        "reason": entry.reason,
        "created_at": entry.created_at.isoformat(),
        "meta": entry.meta or {},
        "model": entry.model,
        "balance_after": entry.balance_after,
    }


@bp.get("/credits")
@login_required
def api_credits():
    credits.sweep_expired_holds(db.session, user_id=current_user.id, limit=credits.OPPORTUNISTIC_SWEEP_LIMIT)
    summary = credits.credit_summary(db.session, current_user.id)
    return jsonify(balance=summary.balance, held=summary.held, available=summary.available)


@bp.get("/credits/ledger")
@login_required
def api_ledger():
    limit = int_arg("limit", default=credits.LEDGER_PAGE_DEFAULT, minimum=1, maximum=credits.LEDGER_PAGE_MAX)
    before = int_arg("before", minimum=1)
    page = credits.list_ledger_entries(db.session, current_user.id, limit=limit, before=before)
    return jsonify(entries=[entry_json(entry) for entry in page.entries], next_before=page.next_before)
