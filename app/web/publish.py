"""Publishing to GitHub: the JSON routes of the contract and the project page's publish panel.

The panel (`partials/_publish_panel.html`, variable `project`) is included by the project page and is
also what every form here returns to an HTMX request; without JavaScript each form posts, then redirects
back to the page it came from (or to `/projects/<id>/publish`, a page with the panel alone).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app import runtime
from app.errors import DomainError, InvalidRequest
from app.extensions import db
from app.models.publish import PUSH_RUNNING, PUSH_UP_TO_DATE
from app.runtime import jobs
from app.services import access
from app.services import publish as publish_service
from app.services.publish.access import RepositoryAccessRequired
from app.services.publish.pull_requests import refresh_pull_requests
from app.web import api
from app.web.api import read_json
from app.web.repo_access import ask_for_repositories, consent_url, register_resumer
from app.web.security import safe_next_path, same_site_path

bp = Blueprint("publish", __name__)

# How long the JSON push route waits for a background push before answering 202 with its status URL.
# How often the API looks at a background push's row while it waits.
PUSH_POLL_S = 0.2
API_PUSH_WAIT_S = 25.0


def _settings() -> publish_service.PublishSettings:
    return publish_service.PublishSettings.from_config(runtime.settings(), runtime.keyring())


def run_push_job(session, push_id: int) -> publish_service.PushOutcome:
    """Job entry point (`jobs.enqueue`): run a recorded push with this app's settings.

    The settings are built here, in the worker, rather than queued with the job: they hold the keyring,
    which must never travel through Redis."""
    return publish_service.run_push(session, push_id, _settings())


def _start_push_in_background(push_id: int) -> jobs.EnqueuedJob:
    """Queue the push as a background job: an RQ job when Redis is configured (any worker host may run
    it), a thread of this process otherwise. Its progress and outcome are on the push row."""
    return jobs.enqueue("app.web.publish:run_push_job", push_id)


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool) or value is None:
        return bool(value)
    raise InvalidRequest(f"{name} must be true or false.", fields={name: "must be true or false"})


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(f"{name} must be a string.", fields={name: "must be a string"})


def _push_json(outcome_or_push: Any, flagged: list[str] | None = None, compare_url: str | None = None) -> dict:
    push = outcome_or_push
    up_to_date = push.status == PUSH_UP_TO_DATE
    body = {
        "push_id": push.id,
        "status": push.status,
        "commit_sha": push.commit_sha,
        "html_url": push.html_url,
        "files_changed": push.files_changed,
        "branch": push.branch,
        "requests_made": push.requests_made,
        "progress": {"done": push.progress_done, "total": push.progress_total},
        "message": "Already up to date: GitHub has this snapshot's files." if up_to_date else None,
        "flagged_paths": flagged or [],
        "pull_request_url": (push.pull_request or {}).get("url"),
    }
    if (push.pull_request or {}).get("error"):
        body["pull_request_error"] = push.pull_request["error"]
    if compare_url:
        body["compare_url"] = compare_url
    if push.error_code:
        body["error"] = {"code": push.error_code, "message": push.error_message}
    return body


# --- JSON API ----------------------------------------------------------------------------------------


@api.bp.post("/github/repo/<int:project_id>/init")
@login_required
def api_init_repo(project_id: int):
    body = read_json()
    try:
        link = publish_service.create_repository(
            db.session, project_id=project_id, user_id=current_user.id, settings=_settings(),
            name=_optional_str(body, "name"), description=_optional_str(body, "description"),
            private=None if body.get("private") is None else _bool(body.get("private"), "private"),
            link_existing=_bool(body.get("link_existing"), "link_existing"))
    except RepositoryAccessRequired as exc:
        exc.extra["consent_url"] = consent_url(url_for("publish.page", project_id=project_id))
        raise
    return jsonify(repo_full_name=link.full_name, html_url=link.html_url, private=link.private,
                   linked_existing=link.linked_existing), 201


@api.bp.post("/github/repo/<int:project_id>/push")
@login_required
def api_push(project_id: int):
    body = read_json()
    snapshot_id = body.get("snapshot_id")
    if snapshot_id is not None and (isinstance(snapshot_id, bool) or not isinstance(snapshot_id, int)):
        raise InvalidRequest("snapshot_id must be a whole number.", fields={"snapshot_id": "not a whole number"})
    push = publish_service.start_push(
        db.session, project_id=project_id, user_id=current_user.id, snapshot_id=snapshot_id,
        confirm_flagged=_bool(body.get("confirm_flagged"), "confirm_flagged"),
        new_branch=_bool(body.get("new_branch"), "new_branch"), branch=_optional_str(body, "branch"),
        pull_request=_bool(body.get("pull_request"), "pull_request"), title=_optional_str(body, "title"),
        body=_optional_str(body, "body"))
    snapshot = publish_service.pushed_snapshot(db.session, push)
    if snapshot is not None and snapshot.file_count > publish_service.PUSH_INLINE_MAX_FILES:
        _start_push_in_background(push.id)
        push = publish_service.wait_for_push_end(db.session, push.id, timeout_s=API_PUSH_WAIT_S, poll_s=PUSH_POLL_S)
        if push.status == PUSH_RUNNING:
            body = _push_json(push)
            body["status_url"] = url_for("api.api_push_status", project_id=project_id, push_id=push.id)
            return jsonify(body), 202
        if push.error_code:
            raise _stored_error(push)
        return jsonify(_push_json(push, list(snapshot.flagged_paths or []), _compare_url(push)))
    outcome = publish_service.run_push(db.session, push.id, _settings())
    if outcome.error is not None:
        raise outcome.error
    return jsonify(_push_json(outcome.push, outcome.flagged_paths, outcome.compare_url))


@api.bp.get("/github/repo/<int:project_id>/pushes/<int:push_id>")
@login_required
def api_push_status(project_id: int, push_id: int):
    push = publish_service.get_push(db.session, project_id=project_id, user_id=current_user.id, push_id=push_id)
    return jsonify(_push_json(push, compare_url=_compare_url(push)))


def _compare_url(push) -> str | None:
    return publish_service.push_compare_url(db.session, push, github_url=runtime.settings().GITHUB_URL)


def _stored_error(push) -> DomainError:
    from app.errors import Conflict, UpstreamError

    if push.error_code and push.error_code.startswith(("push_", "repo_", "branch_")):
        return Conflict(push.error_message or "The push failed.", reason=push.error_code)
    return UpstreamError("GitHub", push.error_message or "The push failed.", reason=push.error_code)


# --- pages -------------------------------------------------------------------------------------------


def panel_view(project) -> publish_service.PublishPanel:
    """The publish panel's state for `project` (owned by the signed-in person), for `render_template`."""
    settings = runtime.settings()
    if current_user.is_authenticated and project.repo_full_name:
        refresh_pull_requests(db.session, project, user_id=current_user.id, settings=_settings())
    return publish_service.publish_panel(
        db.session, project, github_url=settings.GITHUB_URL, allow_private=settings.GITHUB_ALLOW_PRIVATE_REPOS,
        back=_page_path(project.id))


def _page_path(project_id: int) -> str:
    """The page the panel sits on, for forms posted without JavaScript to return to."""
    if request.headers.get("HX-Request"):
        return same_site_path(request.headers.get("HX-Current-URL")) or url_for("publish.page", project_id=project_id)
    if request.method == "GET":
        return request.path
    return url_for("publish.page", project_id=project_id)


def _safe_next(project_id: int) -> str:
    """Where a form without JavaScript returns: a path on this site, else the publish page."""
    return safe_next_path(request.form.get("next")) or url_for("publish.page", project_id=project_id)


def _panel_response(project_id: int, **extra: Any):
    """The panel for HTMX; a redirect back for a plain form post (flashes carry the news)."""
    if request.headers.get("HX-Request"):
        project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
        return render_template("partials/_publish_panel.html", project=project, panel=panel_view(project), **extra)
    for category, message in extra.get("notices", []):
        flash(message, category)
    return redirect(_safe_next(project_id))


# Errors the panel explains in a callout of its own, with the offer that goes with them.
EXPLAINED_IN_PANEL = {"push_conflict", "repo_missing", "repo_exists", "confirmation_required",
                      "github_token_revoked", "github_missing_scope", "github_not_connected",
                      "github_app_not_installed", "github_app_link_only"}


def _render_error(project_id: int, exc: DomainError, **extra: Any):
    notices = [] if exc.extra.get("reason") in EXPLAINED_IN_PANEL else [("error", exc.message)]
    if request.headers.get("HX-Request"):
        return _panel_response(project_id, notices=notices, error=exc, **extra)
    # Without JavaScript the offer must survive the redirect: render the panel page directly.
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    return render_template("publish/page.html", project=project, panel=panel_view(project), notices=notices,
                           error=exc, **extra), exc.status


@bp.get("/projects/<int:project_id>/publish")
@login_required
def page(project_id: int):
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    return render_template("publish/page.html", project=project, panel=panel_view(project))


@bp.get("/projects/<int:project_id>/publish/panel")
@login_required
def panel(project_id: int):
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    return render_template("partials/_publish_panel.html", project=project, panel=panel_view(project))


def _create_from_form(project_id: int, form: dict[str, str]) -> publish_service.RepoLink:
    private = form.get("visibility", "private" if runtime.settings().GITHUB_ALLOW_PRIVATE_REPOS else "public")
    return publish_service.create_repository(
        db.session, project_id=project_id, user_id=current_user.id, settings=_settings(),
        name=form.get("name") or None, description=form.get("description"),
        private=private == "private", link_existing=form.get("link_existing") == "1")


def _created_sentence(link: publish_service.RepoLink) -> str:
    return f"{'Linked' if link.linked_existing else 'Created'} {link.full_name} on GitHub."


@bp.post("/projects/<int:project_id>/publish/repo")
@login_required
def create_repo(project_id: int):
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    try:
        link = _create_from_form(project_id, form)
    except RepositoryAccessRequired:
        access.owned_project(db.session, user_id=current_user.id, project_id=project_id)  # 404 before asking
        return ask_for_repositories("create_repo", project_id=project_id, form=form, back=_return_page(project_id))
    except DomainError as exc:
        return _render_error(project_id, exc, form_values=dict(form))
    return _panel_response(project_id, notices=[("success", _created_sentence(link))])


def _finish_create_repo(action: dict[str, Any]):
    """The create or link the person started before GitHub asked for repository access."""
    project_id = int(action["project_id"])
    back = safe_next_path(action.get("back")) or url_for("publish.page", project_id=project_id)
    try:
        link = _create_from_form(project_id, dict(action.get("form") or {}))
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(back)
    flash(_created_sentence(link), "success")
    return redirect(back)


register_resumer("create_repo", _finish_create_repo)


def _return_page(project_id: int) -> str:
    if request.headers.get("HX-Request"):
        return same_site_path(request.headers.get("HX-Current-URL")) or url_for("publish.page", project_id=project_id)
    return _safe_next(project_id)


@bp.post("/projects/<int:project_id>/publish/unlink")
@login_required
def unlink(project_id: int):
    try:
        publish_service.unlink_repository(db.session, project_id=project_id, user_id=current_user.id)
    except DomainError as exc:
        return _render_error(project_id, exc)
    return _panel_response(project_id, notices=[("info", "The repository is no longer linked to this project.")])


@bp.post("/projects/<int:project_id>/publish/push")
@login_required
def push(project_id: int):
    form = request.form
    raw_snapshot = form.get("snapshot_id", "")
    snapshot_id = int(raw_snapshot) if raw_snapshot.isdigit() else None
    try:
        started = publish_service.start_push(
            db.session, project_id=project_id, user_id=current_user.id, snapshot_id=snapshot_id,
            confirm_flagged=form.get("confirm_flagged") == "1", new_branch=form.get("new_branch") == "1",
            branch=form.get("branch") or None, pull_request=form.get("pull_request") == "1",
            title=form.get("title") or None, body=form.get("body") or None)
    except DomainError as exc:
        return _render_error(project_id, exc, form_values=dict(form))
    snapshot = publish_service.pushed_snapshot(db.session, started)
    if snapshot is not None and snapshot.file_count > publish_service.PUSH_INLINE_MAX_FILES:
        _start_push_in_background(started.id)
        return _panel_response(project_id, notices=[("info", f"Pushing snapshot #{snapshot.number} in the "
                                                              "background…")])
    outcome = publish_service.run_push(db.session, started.id, _settings())
    if outcome.error is not None:
        return _render_error(project_id, outcome.error)
    done = outcome.push
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    pr = done.pull_request or {}
    if pr.get("url"):
        notice = ("success", f"Pushed snapshot #{snapshot.number} to {done.branch} and opened pull request "
                             f"#{pr['number']}.")
    elif done.status != PUSH_UP_TO_DATE and project is not None and done.branch != project.repo_branch:
        notice = ("success", f"Pushed snapshot #{snapshot.number} to the new branch {done.branch}.")
    elif done.status == PUSH_UP_TO_DATE:
        notice = ("info", "Already up to date: GitHub has this snapshot's files.")
    else:
        notice = ("success", f"Pushed {done.files_changed} changed file{'s' if done.files_changed != 1 else ''} "
                             f"as commit {(done.commit_sha or '')[:7]}.")
    return _panel_response(project_id, notices=[notice])
