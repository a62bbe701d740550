"""Workspace pages: the list with a form to create a team, a workspace's members (add by GitHub login,
change role or cap, remove, leave) and its pool (move credits in). Forms work without JavaScript; every
rule is the services' (`services/workspaces`, `services/policy.py`)."""

from __future__ import annotations

import uuid

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.errors import DomainError
from app.extensions import db
from app.services import workspaces
from app.services.workspaces import pool

bp = Blueprint("workspaces", __name__)


@bp.app_template_global("workspace_switcher_entries")
def workspace_switcher_entries() -> list[workspaces.WorkspaceView]:
    """The signed-in person's workspaces for the header's switcher (one query, only when it renders)."""
    if not current_user.is_authenticated:
        return []
    return workspaces.list_workspaces(db.session, user_id=current_user.id)


def _form_int(name: str) -> int | None | str:
    raw = request.form.get(name, "").strip().replace(",", "")
    if raw == "":
        return None
    return int(raw) if raw.isdigit() else raw  # a non-number reaches the service, which says what is wrong


@bp.get("/workspaces")
@login_required
def index():
    views = workspaces.list_workspaces(db.session, user_id=current_user.id)
    return render_template("workspaces/index.html", workspaces=views, form={}, errors={})


@bp.post("/workspaces")
@login_required
def create():
    name = request.form.get("name", "")
    try:
        team = workspaces.create_team(db.session, user_id=current_user.id, name=name)
    except DomainError as error:
        views = workspaces.list_workspaces(db.session, user_id=current_user.id)
        return render_template("workspaces/index.html", workspaces=views, form={"name": name},
                               errors={**error.fields, "_message": error.message}), error.status
    flash(f"Team “{team.name}” created. Add members by their GitHub login.", "success")
    return redirect(url_for("workspaces.show", workspace_id=team.id))


def _render_show(workspace_id: int, *, errors: dict | None = None, status: int = 200):
    members = workspaces.list_members(db.session, user_id=current_user.id, workspace_id=workspace_id)
    summary = pool.pool_summary(db.session, user_id=current_user.id, workspace_id=workspace_id)
    mine = next(w for w in workspaces.list_workspaces(db.session, user_id=current_user.id) if w.id == workspace_id)
    spent = {m.login: m.spent_this_month for m in summary.members}
    return render_template("workspaces/show.html", workspace=mine, members=members, pool=summary, spent=spent,
                           errors=errors or {}), status


@bp.get("/workspaces/<int:workspace_id>")
@login_required
def show(workspace_id: int):
    return _render_show(workspace_id)


def _act(workspace_id: int, action, success: str):
    try:
        action()
    except DomainError as error:
        if error.status == 404:
            raise
        return _render_show(workspace_id, errors={**error.fields, "_message": error.message}, status=error.status)
    flash(success, "success")
    return redirect(url_for("workspaces.show", workspace_id=workspace_id))


@bp.post("/workspaces/<int:workspace_id>/members")
@login_required
def add_member(workspace_id: int):
    login = request.form.get("login", "")
    return _act(workspace_id, lambda: workspaces.add_member(
        db.session, user_id=current_user.id, workspace_id=workspace_id, login=login,
        role=request.form.get("role", "member"), monthly_cap=_form_int("monthly_cap")), f"{login} added.")


@bp.post("/workspaces/<int:workspace_id>/members/<login>")
@login_required
def update_member(workspace_id: int, login: str):
    changes: dict[str, object] = {"monthly_cap": _form_int("monthly_cap")}
    if request.form.get("role"):
        changes["role"] = request.form["role"]
    return _act(workspace_id, lambda: workspaces.update_member(
        db.session, user_id=current_user.id, workspace_id=workspace_id, login=login, changes=changes),
        f"{login} updated.")


@bp.post("/workspaces/<int:workspace_id>/members/<login>/remove")
@login_required
def remove_member(workspace_id: int, login: str):
    leaving = login.lower() == current_user.login.lower()
    try:
        workspaces.remove_member(db.session, user_id=current_user.id, workspace_id=workspace_id, login=login)
    except DomainError as error:
        if error.status == 404:
            raise
        return _render_show(workspace_id, errors={**error.fields, "_message": error.message}, status=error.status)
    if leaving:
        flash("You left the team.", "success")
        return redirect(url_for("workspaces.index"))
    flash(f"{login} removed.", "success")
    return redirect(url_for("workspaces.show", workspace_id=workspace_id))


@bp.post("/workspaces/<int:workspace_id>/credits")
@login_required
def grant(workspace_id: int):
    amount = _form_int("amount")
    key = request.form.get("request_key") or uuid.uuid4().hex
    return _act(workspace_id, lambda: pool.grant_to_pool(
        db.session, user_id=current_user.id, workspace_id=workspace_id, amount=amount, request_key=key[:64]),
        f"{amount} credits moved to the team's pool.")
