"""Credits a person can see: the usage page and its CSV export (the JSON API is app/web/api/credits.py).

Routes here only read. Every change to a balance goes through `app.services.credits`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask_login import current_user, login_required

from app import runtime
from app.extensions import db
from app.models import LedgerEntry
from app.models.base import utcnow
from app.services import credits, snapshots
from app.services.usage import report
from app.web.api import int_arg
from app.web.usage_chart import CHART_DAYS, build_usage_chart

bp = Blueprint("credits", __name__)


@bp.app_template_filter("readable_bytes")
def readable_bytes_filter(size: int) -> str:
    return snapshots.readable_bytes(size)

REASON_WORDS = {
    credits.REASON_SIGNUP: "Welcome credits",
    credits.REASON_CHAT: "Chat reply",
    credits.REASON_PLAN_GRANT: "Plan credits",
    credits.REASON_ADMIN_GRANT: "Credits from Sorya",
    credits.REASON_REFUND: "Refund",
    credits.REASON_ADJUSTMENT: "Adjustment",
}
NOTE_SHOWN_CHARS = 140
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
CSV_COLUMNS = ("id", "created_at_utc", "reason", "description", "details", "model", "delta", "balance_after", "meta")


# -- describing ledger entries in words ----------------------------------------------------------


@dataclass(frozen=True)
class EntryView:
    entry: LedgerEntry
    title: str
    details: str


def _count(meta: dict[str, Any], key: str) -> int | None:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _note(meta: dict[str, Any]) -> str:
    note = meta.get("note")
    if not isinstance(note, str):
        return ""
    note = " ".join(note.split())
    return note if len(note) <= NOTE_SHOWN_CHARS else note[: NOTE_SHOWN_CHARS - 1] + "…"


def summarise_meta(entry: LedgerEntry) -> str:
    """The entry's meta in a short sentence: tokens for a reply, plan for a grant, the operator's note."""
    meta = entry.meta if isinstance(entry.meta, dict) else {}
    parts = []
    if entry.model:
        parts.append(entry.model)
    tokens_in, tokens_out = _count(meta, "tokens_in"), _count(meta, "tokens_out")
    if tokens_in is not None and tokens_out is not None:
        parts.append(f"{tokens_in:,} tokens in, {tokens_out:,} out")
    plan = meta.get("plan")
    if isinstance(plan, str) and plan:
        parts.append(f"{plan.capitalize()} plan")
    note = _note(meta)
    if note:
        parts.append(note)
    uncollected = _count(meta, "uncollected")
    if uncollected:
        parts.append(f"{uncollected:,} credits not collected: the balance ran out")
    requested = _count(meta, "requested_delta")
    if requested is not None and requested != entry.delta:
        parts.append(f"{-requested:,} requested, stopped at a zero balance")
    return " · ".join(parts)


def describe_entry(entry: LedgerEntry) -> EntryView:
    title = REASON_WORDS.get(entry.reason, entry.reason.replace("_", " ").capitalize())
    return EntryView(entry=entry, title=title, details=summarise_meta(entry))


# -- pages ---------------------------------------------------------------------------------------


def _ledger_context(user_id: int, before: int | None) -> dict[str, Any]:
    page = credits.list_ledger_entries(db.session, user_id, limit=credits.LEDGER_PAGE_DEFAULT, before=before)
    return {"entries": [describe_entry(entry) for entry in page.entries], "next_before": page.next_before,
            "before": before}


@bp.get("/usage")
@login_required
def usage():
    before = int_arg("before")
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "ledger":
        return render_template("partials/_ledger_table.html", **_ledger_context(current_user.id, before))
    # A crashed reply's hold must not keep showing as held: release this user's overdue ones first.
    credits.sweep_expired_holds(db.session, user_id=current_user.id, limit=credits.OPPORTUNISTIC_SWEEP_LIMIT)
    today = utcnow().date()
    chart = build_usage_chart(credits.daily_usage(db.session, current_user.id, days=CHART_DAYS, today=today),
                              today=today)
    by_project = report.own_usage_by_project(db.session, user_id=current_user.id,
                                             start=today - timedelta(days=CHART_DAYS - 1), end=today)
    return render_template(
        "credits/usage.html",
        summary=credits.credit_summary(db.session, current_user.id),
        chart=chart,
        by_project=by_project,
        storage=snapshots.storage_usage(db.session, current_user.id, runtime.settings().STORAGE_QUOTA_BYTES),
        **_ledger_context(current_user.id, before),
    )


def csv_cell(value: Any) -> Any:
    """A value safe to open in a spreadsheet: text that would run as a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def ledger_csv_rows(entries: Iterator[LedgerEntry]) -> Iterator[str]:
    """The CSV text, one line at a time, so a ledger of any size streams in constant memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: tuple[Any, ...]) -> str:
        writer.writerow([csv_cell(value) for value in values])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(CSV_COLUMNS)
    for entry in entries:
        view = describe_entry(entry)
        yield line((
            entry.id,
            entry.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            entry.reason,
            view.title,
            view.details,
            entry.model or "",
            entry.delta,
            entry.balance_after,
            json.dumps(entry.meta or {}, ensure_ascii=False, sort_keys=True),
        ))


@bp.get("/usage/ledger.csv")
@login_required
def ledger_csv():
    user_id = current_user.id
    entries = credits.iter_ledger_entries(db.session, user_id)
    filename = f"sorya-ledger-{utcnow():%Y-%m-%d}.csv"
    return Response(
        stream_with_context(ledger_csv_rows(entries)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
