"""A workspace's usage page (`/workspaces/<id>/usage`) and its CSV (`/workspaces/<id>/usage.csv`): filters
are a plain GET form, sorting is links, the chart is server-side SVG, so all of it works without
JavaScript. Figures come from `services/usage/team_page.py`; rights from `services/policy.py`."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from flask import Blueprint, Response, render_template, request, url_for
from flask_login import current_user, login_required

from app.errors import InvalidRequest
from app.extensions import db
from app.models.base import utcnow
from app.services.usage import report, team_page
from app.web.api.workspaces import usage_query_from_args
from app.web.credits import csv_cell
from app.web.usage_chart import CHART_DAYS, build_usage_chart, day_label

bp = Blueprint("workspace_usage", __name__)

GROUP_TITLES = {"member": "Member", "project": "Project", "model": "Model", "day": "Day (UTC)"}
# Credits first: on a phone the table scrolls sideways, and what was spent must be in view.
COLUMNS = (("credits", "Credits"), ("replies", "Replies"), ("failed_replies", "Failed"),
           ("stopped_replies", "Stopped"), ("tokens_in", "Tokens in"), ("tokens_out", "Tokens out"))
CSV_COLUMNS = ("replies", "failed_replies", "stopped_replies", "tokens_in", "tokens_out", "credits")


def default_range() -> tuple[date, date]:
    today = utcnow().date()
    return today - timedelta(days=CHART_DAYS - 1), today


def _page_or_errors(workspace_id: int) -> tuple[team_page.TeamUsagePage, dict]:
    """The page for the request's filters; for filters that are wrong (a bad date, an unknown member), the
    default view with the sentence and the field at fault. 403/404 pass on to the error pages."""
    start, end = default_range()
    try:
        query = usage_query_from_args(request.args, default_start=start, default_end=end)
        return team_page.team_usage_page(db.session, user_id=current_user.id, workspace_id=workspace_id,
                                         query=query), {}
    except InvalidRequest as error:
        errors = {**error.fields, "_message": error.message}
    query = report.usage_query(start=start, end=end)
    return team_page.team_usage_page(db.session, user_id=current_user.id, workspace_id=workspace_id,
                                     query=query), errors


def filter_args(query: report.UsageQuery, **changes) -> dict:
    """The query string of this view with `changes`: links keep every other filter."""
    args = {"from": query.start.isoformat(), "to": query.end.isoformat(), "member": query.member_login,
            "group_by": query.group_by, "sort": query.sort, "dir": "desc" if query.descending else "asc"}
    args.update(changes)
    return {name: value for name, value in args.items() if value}


def period_words(query: report.UsageQuery) -> str:
    if query.start.year != query.end.year:
        return f"{day_label(query.start)}, {query.start.year} – {day_label(query.end)}, {query.end.year}"
    return f"{day_label(query.start)} – {day_label(query.end)}, {query.end.year}"


@bp.get("/workspaces/<int:workspace_id>/usage")
@login_required
def page(workspace_id: int):
    found, errors = _page_or_errors(workspace_id)
    query = found.query
    chart = build_usage_chart(found.daily, today=query.end, days=query.days, period=period_words(query))
    return render_template(
        "workspaces/usage.html", usage=found, query=query, chart=chart, errors=errors, columns=COLUMNS,
        group_titles=GROUP_TITLES, filter_args=filter_args,
        csv_url=url_for("workspace_usage.export", workspace_id=workspace_id, **filter_args(query)),
    ), 400 if errors else 200


@bp.get("/workspaces/<int:workspace_id>/usage.csv")
@login_required
def export(workspace_id: int):
    start, end = default_range()
    query = usage_query_from_args(request.args, default_start=start, default_end=end)
    found = team_page.team_usage_page(db.session, user_id=current_user.id, workspace_id=workspace_id, query=query)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow((query.group_by, *CSV_COLUMNS))
    for row in found.rows:
        writer.writerow((csv_cell(row.key), *(getattr(row, name) for name in CSV_COLUMNS)))
    member = f"-{query.member_login}" if query.member_login else ""
    filename = f"sorya-usage-{workspace_id}{member}-{query.start}-{query.end}-by-{query.group_by}.csv"
    return Response(buffer.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
