"""The workspaces part of the JSON API (`/api/workspaces...`): list and create workspaces, add, change and
remove members, a team pool's credits. Rights are `services/policy.py`'s: 404 for a workspace the caller
is not a member of, 403 for what their role does not allow."""

from __future__ import annotations

import uuid

from flask import Response, jsonify, request
from flask_login import current_user, login_required

from app.errors import InvalidRequest
from app.extensions import db
from app.models.base import utcnow
from app.services import workspaces
from app.services.usage import report
from app.services.workspaces import pool
from app.web.api import bp, read_json


def member_json(member: workspaces.MemberView) -> dict:
    return {"login": member.login, "role": member.role, "monthly_cap": member.monthly_cap, "status": member.status}


def only_fields(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"Unknown fields: {', '.join(unknown)}.", fields={k: "unknown field" for k in unknown})


@bp.get("/workspaces")
@login_required
def api_list_workspaces():
    views = workspaces.list_workspaces(db.session, user_id=current_user.id)
    return jsonify(workspaces=[{"id": w.id, "name": w.name, "kind": w.kind, "role": w.role} for w in views])


@bp.post("/workspaces")
@login_required
def api_create_workspace():
    body = read_json()
    only_fields(body, {"name"})
    team = workspaces.create_team(db.session, user_id=current_user.id, name=body.get("name"))
    return jsonify(id=team.id, name=team.name, kind=team.kind, role="owner"), 201


@bp.get("/workspaces/<int:workspace_id>/members")
@login_required
def api_list_members(workspace_id: int):
    members = workspaces.list_members(db.session, user_id=current_user.id, workspace_id=workspace_id)
    return jsonify(members=[member_json(m) for m in members])


@bp.post("/workspaces/<int:workspace_id>/members")
@login_required
def api_add_member(workspace_id: int):
    body = read_json()
    only_fields(body, {"login", "role", "monthly_cap"})
    member = workspaces.add_member(db.session, user_id=current_user.id, workspace_id=workspace_id,
                                   login=body.get("login"), role=body.get("role", "member"),
                                   monthly_cap=body.get("monthly_cap"))
    return jsonify(member_json(member)), 201


@bp.patch("/workspaces/<int:workspace_id>/members/<login>")
@login_required
def api_update_member(workspace_id: int, login: str):
    body = read_json()
    only_fields(body, {"role", "monthly_cap"})
    member = workspaces.update_member(db.session, user_id=current_user.id, workspace_id=workspace_id,
                                      login=login, changes=body)
    return jsonify(member_json(member))


@bp.delete("/workspaces/<int:workspace_id>/members/<login>")
@login_required
def api_remove_member(workspace_id: int, login: str):
    workspaces.remove_member(db.session, user_id=current_user.id, workspace_id=workspace_id, login=login)
    return Response(status=204)


@bp.get("/workspaces/<int:workspace_id>/credits")
@login_required
def api_workspace_credits(workspace_id: int):
    summary = pool.pool_summary(db.session, user_id=current_user.id, workspace_id=workspace_id)
    return jsonify(balance=summary.balance, held=summary.held, members=[
        {"login": m.login, "spent_this_month": m.spent_this_month, "monthly_cap": m.monthly_cap}
        for m in summary.members])


@bp.post("/workspaces/<int:workspace_id>/credits")
@login_required
def api_grant_to_workspace(workspace_id: int):
    body = read_json()
    only_fields(body, {"amount"})
    # A client retrying the same grant sends the same Idempotency-Key; without one each call is new.
    key = (request.headers.get("Idempotency-Key") or uuid.uuid4().hex)[:64]
    balance = pool.grant_to_pool(db.session, user_id=current_user.id, workspace_id=workspace_id,
                                 amount=body.get("amount"), request_key=key)
    return jsonify(balance=balance), 201


@bp.get("/workspaces/<int:workspace_id>/usage")
@login_required
def api_workspace_usage(workspace_id: int):
    today = utcnow().date()
    query = usage_query_from_args(request.args, default_start=today.replace(day=1), default_end=today)
    rows = report.team_usage(db.session, user_id=current_user.id, workspace_id=workspace_id, query=query)
    return jsonify(rows=[usage_row_json(row) for row in rows])


def usage_row_json(row: report.UsageRow) -> dict:
    return {"key": row.key, "tokens_in": row.tokens_in, "tokens_out": row.tokens_out, "credits": row.credits,
            "replies": row.replies, "failed_replies": row.failed_replies, "stopped_replies": row.stopped_replies}


def usage_query_from_args(args, *, default_start, default_end) -> report.UsageQuery:
    """The usage filters of a query string (`from`, `to`, `member`, `group_by`, `sort`, `dir`), checked by
    the service; the JSON API and the usage page read the same names."""
    return report.usage_query(
        start=report.parse_day(args.get("from"), "from", default_start),
        end=report.parse_day(args.get("to"), "to", default_end),
        group_by=args.get("group_by"), member_login=args.get("member"), sort=args.get("sort"),
        direction=args.get("dir"))
