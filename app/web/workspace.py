"""The workspace's server side: what a reply's files become (*Keep these files*, *Save to a project…*),
uploads as a new version, a version's fresh preview address. Plain forms (flash and redirect) that htmx
enhances (the chip or a fragment swapped in place); JSON when asked with `Accept: application/json`.
Routes parse, call `app.services.snapshots`, and render."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.errors import DomainError, InsufficientCredits, InvalidRequest, NotFound
from app.extensions import db
from app.services import access, chat
from app.services import snapshots as snapshot_service
from app.services.chat.estimate import SendEstimate, send_estimate
from app.services.chat.regenerate import regenerate_reply
from app.services.snapshots import SnapshotResult, site
from app.services.snapshots.auto import keep_reply_files, save_reply_to_project
from app.services.snapshots.upload import Upload, take_snapshot_from_upload
from app.web import snapshot_preview
from app.web.chat import (
    NO_JS_WAIT_S,
    chat_settings,
    current_user_id,
    limit_sending,
    start_generating,
    wait_for_end,
)
from app.web.projects import is_htmx, limits
from app.web.request_limits import limit_body
from app.web.snapshot_actions import SnapshotActions

bp = Blueprint("workspace", __name__)


def wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _chip(message_id: int, *, error: DomainError | None = None) -> Response:
    message = access.owned_reply(db.session, user_id=current_user.id, message_id=message_id, fresh=True)
    project = access.owned_project(db.session, user_id=current_user.id, project_id=message.project_id) \
        if message.project_id is not None else None
    html = render_template("partials/_reply_version_chip.html", message=message,
                           snapshot_actions=SnapshotActions(db.session, user_id=current_user.id, project=project),
                           chip_error=error.message if error else None)
    return Response(html, status=error.status if error else 200)


def _landed(result: SnapshotResult, verb: str) -> Response:
    snapshot = result.snapshot
    if wants_json():
        return jsonify(snapshot_id=snapshot.id, number=snapshot.number, project_id=snapshot.project_id,
                       created=result.created, files=result.from_this_source), 201 if result.created else 200
    flash(f"{verb} as version {snapshot.number}." if result.created else f"Already version {snapshot.number}.",
          "success")
    return redirect(url_for("projects.snapshot", project_id=snapshot.project_id, snapshot_id=snapshot.id))


def _refused(error: DomainError, back: str) -> Any:
    if wants_json():
        return jsonify(error.to_json()), error.status
    flash(error.message, "error")
    return redirect(back)


def _back_to_chat(message_id: int) -> str:
    message = access.owned_reply(db.session, user_id=current_user.id, message_id=message_id)
    if message.project_id is not None:
        return url_for("chat.project", project_id=message.project_id) + f"#message-{message_id}"
    return url_for("chat.general") + f"#message-{message_id}"


@bp.post("/messages/<int:message_id>/keep")
@login_required
def keep_files(message_id: int):
    """*Keep these files* of a stopped or failed reply: a version of its complete files."""
    raw = request.form.get("project_id", "")
    try:
        result = keep_reply_files(db.session, user_id=current_user.id, message_id=message_id, limits=limits(),
                                  project_id=int(raw) if raw.isdigit() else None)
    except NotFound:
        raise
    except DomainError as error:
        if is_htmx():
            return _chip(message_id, error=error)
        return _refused(error, _back_to_chat(message_id))
    if is_htmx():
        return _chip(message_id)
    return _landed(result, "Kept")


@bp.post("/messages/<int:message_id>/save-to-project")
@login_required
def save_to_project(message_id: int):
    """*Save to a project…*: a general-chat reply's files as a version of a project, picked or created."""
    raw = request.form.get("project_id", "").strip()
    name = request.form.get("new_project_name", "")
    try:
        if raw not in ("", "new") and not raw.isdigit():
            raise InvalidRequest("Choose a project, or name a new one.", fields={"project_id": "not a project"})
        result = save_reply_to_project(
            db.session, user_id=current_user.id, message_id=message_id,
            project_id=int(raw) if raw.isdigit() else None, new_project_name=name, limits=limits(),
        )
    except NotFound:
        raise
    except DomainError as error:
        return _refused(error, _back_to_chat(message_id))
    return _landed(result, "Saved")


# -- a version's preview ---------------------------------------------------------------------------------


@bp.get("/projects/<int:project_id>/snapshots/<int:snapshot_id>/preview-url")
@login_required
def preview_url(project_id: int, snapshot_id: int):
    """A fresh preview address of the version: `{"url", "entry", "site_kind", "expires_in", "message"}`.

    `?path=` keeps the page the preview was on when the version has it (a refresh near the token's
    expiry, or a new version landing); else the version's entry page. `url` is null, and `message` says
    why, for a version a browser cannot run. Without `Accept: application/json` (a plain *Open in new tab*
    link) it redirects to the address."""
    snap = access.owned_snapshot(db.session, user_id=current_user.id, snapshot_id=snapshot_id, project_id=project_id)
    paths = [entry.path for entry in snapshot_service.list_snapshot_files(db.session, snap.id)]
    notes = snap.notes or {}
    plan = site.site_plan(paths, notes.get("added", []) + notes.get("changed", []))
    wanted = request.args.get("path", "")
    page = wanted if wanted in paths else plan.entry
    url = snapshot_preview.preview_url(snap, current_user.id, page) if page else None
    if not wants_json() and request.accept_mimetypes.accept_html:
        if url is None:
            flash(plan.message or "This version has no page to show.", "info")
            return redirect(url_for("projects.snapshot", project_id=project_id, snapshot_id=snap.id))
        return redirect(url)
    response = jsonify(url=url, entry=plan.entry, path=page, site_kind=plan.site_kind, message=plan.message,
                       expires_in=snapshot_preview.PREVIEW_TOKEN_TTL_S, snapshot_id=snap.id, number=snap.number)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/projects/<int:project_id>/settings/preview")
@login_required
def preview_settings(project_id: int):
    """The project's "Previews may load from https: CDNs" setting (a checkbox: absent means off)."""
    allow = request.form.get("preview_allow_cdn") in ("1", "on", "true")
    project = site.set_preview_allow_cdn(db.session, user_id=current_user.id, project_id=project_id, allow=allow)
    if wants_json():
        return jsonify(project_id=project.id, preview_allow_cdn=project.preview_allow_cdn)
    flash("Previews may now load from https: CDNs." if allow else "Previews now load only the version's own files.",
          "success")
    return redirect(url_for("projects.settings", project_id=project.id))


# -- the cost before sending -----------------------------------------------------------------------------


@bp.app_template_filter("compact_number")
def compact_number(value: int) -> str:
    """3100 → "3.1k", 950 → "950", 2_000_000 → "2m"."""
    for size, suffix in ((1_000_000, "m"), (1_000, "k")):
        if value >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(value)


def estimate_for_request() -> SendEstimate:
    """The estimate of the draft in the request (form, query or JSON body): `message`, `project_id`,
    `model`."""
    values: dict[str, Any] = dict(request.values)
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            values.update(body)
    raw_project = values.get("project_id")
    if raw_project in (None, ""):
        project_id = None
    elif isinstance(raw_project, int | str) and not isinstance(raw_project, bool) and str(raw_project).isdigit():
        project_id = int(raw_project)
    else:
        raise InvalidRequest("project_id must be a project's id.", fields={"project_id": "not an id"})
    return send_estimate(db.session, user_id=current_user.id, project_id=project_id, model=values.get("model"),
                         message_text=values.get("message", ""), settings=chat_settings())


@bp.route("/chat/estimate", methods=["GET", "POST"])
@login_required
def estimate():
    """The composer's "at most 84 credits · context 3.1k tokens" (a fragment), asked as the draft changes."""
    try:
        html = render_template("partials/_send_estimate.html", estimate=estimate_for_request())
    except DomainError as error:
        return Response(render_template("partials/_send_estimate.html", estimate=None,
                                        estimate_error=error.message), status=error.status)
    response = Response(html)
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- regenerate and retry --------------------------------------------------------------------------------


def start_regeneration(user_id: int, message_id: int, model: Any = None) -> chat.SentMessage:
    """Send the message behind `message_id` again as a new reply, admitted and generated like any send."""
    return start_generating(lambda streams, start_early: regenerate_reply(
        db.session, user_id=user_id, message_id=message_id, settings=chat_settings(), streams=streams, model=model,
        start_early=start_early,
    ))


@bp.post("/chat/messages/<int:message_id>/regenerate")
@login_required
@limit_sending
def regenerate(message_id: int):
    """*Regenerate* (the latest reply) or *Retry* (a failed or stopped one): a new reply. With htmx, the new
    reply's live partial, appended to the conversation; without JavaScript, waits for it and shows it."""
    user_id = current_user_id()
    old = access.owned_reply(db.session, user_id=user_id, message_id=message_id)
    page_url = (url_for("chat.project", project_id=old.project_id) if old.project_id is not None
                else url_for("chat.general"))
    try:
        sent = start_regeneration(user_id, message_id, request.form.get("model"))
    except DomainError as error:
        if is_htmx():
            return Response(render_template("partials/_chat_composer_error.html", error=error.message,
                                            error_links_plans=isinstance(error, InsufficientCredits)),
                            status=error.status)
        flash(error.message, "error")
        return redirect(page_url + f"#message-{message_id}", code=303)
    if is_htmx():
        view = chat.reply_view(db.session, user_id=user_id, message_id=sent.reply_id)
        return render_template("partials/_chat_message.html", message=view.message, project=view.project,
                               snapshot_actions=SnapshotActions(db.session, user_id=user_id, project=view.project))
    wait_for_end(sent.reply_id, NO_JS_WAIT_S)
    return redirect(page_url + f"#message-{sent.reply_id}", code=303)


# -- upload ----------------------------------------------------------------------------------------------
# Multipart overhead on top of the files: each part's headers and boundary, and the form's other fields.
UPLOAD_PART_OVERHEAD_BYTES = 1024
UPLOAD_FORM_OVERHEAD_BYTES = 64 * 1024


def upload_body_max_bytes() -> int:
    """An upload's request may carry the most a version may hold, and its multipart framing."""
    snapshot_limits = limits()
    return (snapshot_limits.max_total_bytes + snapshot_limits.max_files * UPLOAD_PART_OVERHEAD_BYTES
            + UPLOAD_FORM_OVERHEAD_BYTES)


@bp.post("/projects/<int:project_id>/upload")
@login_required
@limit_body(upload_body_max_bytes)
def upload(project_id: int):
    """Files or a .zip as the project's next version: flash and redirect, a fragment for htmx, JSON for
    `Accept: application/json` (a page's XHR with progress)."""
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    uploads = [Upload(item.filename or "", item.stream) for item in request.files.getlist("files") if item.filename]
    try:
        result = take_snapshot_from_upload(db.session, user_id=current_user.id, project_id=project.id,
                                           uploads=uploads, limits=limits(), folder=request.form.get("folder", ""))
    except DomainError as error:
        if is_htmx():
            return Response(render_template("partials/_upload_form.html", project=project,
                                            upload_error=error.message), status=error.status)
        return _refused(error, url_for("projects.show", project_id=project.id))
    snapshot = result.snapshot
    if wants_json():
        return jsonify(snapshot_id=snapshot.id, number=snapshot.number, summary=snapshot.summary,
                       files=result.from_this_source, added=sorted(result.added), changed=sorted(result.changed),
                       carried=result.carried), 201
    if is_htmx():
        return render_template("partials/_upload_form.html", project=project, upload_result=result)
    flash(f"Version {snapshot.number}: {snapshot.summary}.", "success")
    return redirect(url_for("projects.snapshot", project_id=project.id, snapshot_id=snapshot.id))
