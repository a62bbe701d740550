"""Projects and snapshots pages: dashboard, project page, preview, diff, download, restore, settings. The
JSON API of the contract (`/api/projects...`, `/api/snapshots/...`) is app/web/api/projects.py.

Routes parse input, call `app.services.projects` / `app.services.snapshots`, and render.
Every object is looked up through the signed-in user, so another user's project, snapshot or message is
a 404 in pages and in the API alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required

from app import runtime
from app.errors import DomainError, InvalidRequest, NotFound
from app.extensions import db
from app.models import Snapshot
from app.models.projects import PROJECT_ARCHIVED
from app.services import access
from app.services import projects as project_service
from app.services import snapshots as snapshot_service
from app.services.snapshots import FileEntry, SnapshotLimits
from app.web.api import int_arg
from app.web.observability import path_carries_credential
from app.web.security import framable_preview
from app.web.snapshot_actions import SnapshotActions
from app.web.snapshot_files import (  # noqa: F401 - default_file and file_view are imported from here too
    FILE_VIEW_CACHE_CONTROL,
    PREVIEW_FILE_CACHE_CONTROL,
    default_file,
    file_view,
    file_view_etag,
    opening_file,
    raw_etag,
    raw_file_response,
)
from app.web.snapshot_preview import (
    CONSOLE_SCRIPT_PATH,
    console_script_response,
    preview_mimetype,
    site_file_response,
    snapshot_for_token,
)

bp = Blueprint("projects", __name__)

RECENT_REPLIES_SHOWN = 10


def limits() -> SnapshotLimits:
    return SnapshotLimits.from_settings(runtime.settings())


def is_htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


# -- template helpers ------------------------------------------------------------------------------


@dataclass
class TreeFolder:
    name: str
    path: str
    folders: dict[str, TreeFolder] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)


def build_file_tree(entries: list[FileEntry]) -> TreeFolder:
    """Folders and files nested by path, folders before files, each sorted by name."""
    root = TreeFolder("", "")
    for entry in entries:
        folder = root
        parts = entry.path.split("/")
        for index, part in enumerate(parts[:-1]):
            folder = folder.folders.setdefault(part, TreeFolder(part, "/".join(parts[: index + 1])))
        folder.files.append(entry)
    return root


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


@bp.app_template_filter("human_size")
def human_size_filter(size: int | None) -> str:
    return human_size(size)


@bp.app_template_filter("file_name")
def file_name_filter(path: str) -> str:
    return path.rsplit("/", 1)[-1]


# -- dashboard and project pages -------------------------------------------------------------------


@bp.get("/projects")
@login_required
def dashboard():
    summaries = project_service.summarise_projects(db.session, user_id=current_user.id,
                                                   workspace_id=int_arg("workspace_id"))
    active = [s for s in summaries if s.project.status != PROJECT_ARCHIVED]
    archived = [s for s in summaries if s.project.status == PROJECT_ARCHIVED]
    return render_template("projects/dashboard.html", active=active, archived=archived, form={}, errors={})


@bp.post("/projects")
@login_required
def create():
    form = {"name": request.form.get("name", ""), "description": request.form.get("description", "")}
    try:
        project = project_service.create_project(
            db.session, user_id=current_user.id, name=form["name"], description=form["description"]
        )
    except InvalidRequest as error:
        summaries = project_service.summarise_projects(db.session, user_id=current_user.id)
        return render_template(
            "projects/dashboard.html",
            active=[s for s in summaries if s.project.status != PROJECT_ARCHIVED],
            archived=[s for s in summaries if s.project.status == PROJECT_ARCHIVED],
            form=form,
            errors={**error.fields, "_message": error.message},
        ), 400
    flash(f"Project “{project.name}” created. Describe what to build: each reply that writes files becomes a version.", "success")
    return redirect(url_for("projects.show", project_id=project.id))


@bp.get("/projects/<int:project_id>")
@login_required
def show(project_id: int):
    """The project's workspace: its conversation beside its versions (the same page as its chat)."""
    from app.web.chat import project as workspace

    return workspace(project_id)


# -- snapshot preview ------------------------------------------------------------------------------


def not_modified(etag: str) -> bool:
    """Whether the request's `If-None-Match` names `etag` (a strong tag of something immutable)."""
    return request.if_none_match.contains(etag)


def answer_not_modified(etag: str, cache_control: str) -> Response:
    response = Response(status=304)
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache_control
    return response


@bp.get("/projects/<int:project_id>/snapshots/<int:snapshot_id>")
@login_required
def snapshot(project_id: int, snapshot_id: int):
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    snap = access.owned_snapshot(
        db.session, user_id=current_user.id, snapshot_id=snapshot_id, project_id=project.id
    )
    entries = snapshot_service.list_snapshot_files(db.session, snap.id)
    wanted = request.args.get("path")
    if wanted is not None:
        selected = next((e for e in entries if e.path == wanted), None)
        if selected is None:
            raise NotFound(f"Snapshot #{snap.number} has no file {wanted!r}.")
    else:
        selected = opening_file(entries, snap)
    rendered = request.args.get("view") == "rendered"
    source = request.args.get("view") == "source"
    if is_htmx() and request.headers.get("HX-Target") == "file-view":
        # One file of an immutable version: tagged by the version and the blob (a rendered HTML view
        # carries a preview link that expires, so it is never revalidated).
        etag = file_view_etag(snap, selected, source=source) if selected and not rendered else None
        if etag and not_modified(etag):
            return answer_not_modified(etag, FILE_VIEW_CACHE_CONTROL)
        view = file_view(snap, selected, rendered=rendered, source=source) if selected else None
        response = Response(render_template("partials/_snapshot_file.html", project=project, snapshot=snap, view=view))
        if etag:
            response.set_etag(etag)
            response.headers["Cache-Control"] = FILE_VIEW_CACHE_CONTROL
    else:
        view = file_view(snap, selected, rendered=rendered, source=source) if selected else None
        others = snapshot_service.list_snapshots(db.session, project.id, limit=100)
        response = Response(
            render_template(
                "projects/snapshot.html",
                project=project,
                snapshot=snap,
                entries=entries,
                tree=build_file_tree(entries),
                view=view,
                snapshots=others,
                is_latest=bool(others) and others[0].id == snap.id,
            )
        )
    response.headers["Vary"] = "HX-Request, HX-Target"
    return response


@bp.get("/projects/<int:project_id>/snapshots/<int:snapshot_id>/raw/<path:path>")
@login_required
def raw_file(project_id: int, snapshot_id: int, path: str):
    """*Raw*: one file of a version as plain text, for people who can see the project (others get a 404)."""
    snap = access.owned_snapshot(db.session, user_id=current_user.id, snapshot_id=snapshot_id, project_id=project_id)
    entry = snapshot_service.snapshot_file_entry(db.session, snap.id, path)
    if not_modified(raw_etag(entry)):  # no blob is read
        return answer_not_modified(raw_etag(entry), FILE_VIEW_CACHE_CONTROL)
    return raw_file_response(entry)


@bp.get("/snapshot-preview/<token>/<path:path>")
@path_carries_credential
@framable_preview(allow_scripts=True)
def rendered_file(token: str, path: str):
    """A snapshot's file served for the sandboxed iframe, authorised by its preview link (see
    app.web.snapshot_preview), so relative links to sibling files also work."""
    snap = snapshot_for_token(db.session, token)
    # A site's CSP: its files, and https: CDNs when the project allows them (app/web/security.py).
    g.preview_allow_cdn = project_service.project_of_snapshot(db.session, snap).preview_allow_cdn
    if path == CONSOLE_SCRIPT_PATH:
        return console_script_response()
    entry = snapshot_service.snapshot_file_entry(db.session, snap.id, path)
    # The blob's hash: the same bytes, redacted alike by the same path. An HTML page carries its token's
    # console script tag, so only the other files answer 304.
    etag = f"b-{entry.sha256[:40]}"
    is_page = preview_mimetype(entry) == "text/html"
    if not is_page and not_modified(etag):
        return answer_not_modified(etag, PREVIEW_FILE_CACHE_CONTROL)
    content = snapshot_service.read_blob_contents(db.session, [entry.blob_id])[entry.blob_id]
    response = site_file_response(entry, content, token=token, parent_origin=request.host_url.rstrip("/"))
    if not is_page:
        response.set_etag(etag)
    return response


def zip_response(snap: Snapshot) -> Response:
    project = project_service.project_of_snapshot(db.session, snap)
    folder = snapshot_service.archive_folder_name(project, snap)
    chunks = snapshot_service.stream_snapshot_zip(db.session, snap, folder)
    response = Response(stream_with_context(chunks), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{folder}.zip"'
    response.headers["Cache-Control"] = "private, no-store"
    response.set_etag(zip_etag(snap, folder))
    return response


def zip_etag(snap: Snapshot, folder: str) -> str:
    """A version's zip never changes but for its folder's name (the project's, which may be renamed)."""
    return f"z-{snap.id}-{hashlib.sha256(folder.encode()).hexdigest()[:16]}"


@bp.get("/projects/<int:project_id>/snapshots/<int:snapshot_id>/download")
@login_required
def download(project_id: int, snapshot_id: int):
    snap = access.owned_snapshot(
        db.session, user_id=current_user.id, snapshot_id=snapshot_id, project_id=project_id
    )
    project = project_service.project_of_snapshot(db.session, snap)
    etag = zip_etag(snap, snapshot_service.archive_folder_name(project, snap))
    if not_modified(etag):  # no blob is read
        return answer_not_modified(etag, "private, no-store")
    return zip_response(snap)


@bp.post("/projects/<int:project_id>/snapshots/<int:snapshot_id>/restore")
@login_required
def restore(project_id: int, snapshot_id: int):
    result = snapshot_service.restore_snapshot(
        db.session, user_id=current_user.id, snapshot_id=snapshot_id, limits=limits(), project_id=project_id
    )
    flash(f"Restored: snapshot #{result.snapshot.number} now holds the files of the one you chose.", "success")
    return redirect(url_for("projects.snapshot", project_id=project_id, snapshot_id=result.snapshot.id))


# -- diff ------------------------------------------------------------------------------------------


@bp.get("/projects/<int:project_id>/diff")
@login_required
def diff(project_id: int):
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    snapshots = snapshot_service.list_snapshots(db.session, project.id)
    view = "split" if request.args.get("view") == "split" else "inline"
    target_id = int_arg("target")
    if target_id is not None:  # someone else's id, or one of another project, is a 404 like everywhere
        access.owned_snapshot(
            db.session, user_id=current_user.id, snapshot_id=target_id, project_id=project.id
        )
    if not snapshots:
        return render_template("projects/diff.html", project=project, snapshots=[], result=None, view=view)
    result = snapshot_service.diff_snapshots(
        db.session, user_id=current_user.id, snapshot_id=target_id or snapshots[0].id, against_id=int_arg("base")
    )
    template = "partials/_snapshot_diff.html" if is_htmx() and request.headers.get("HX-Target") == "diff" \
        else "projects/diff.html"
    response = Response(render_template(template, project=project, snapshots=snapshots, result=result, view=view))
    response.headers["Vary"] = "HX-Request, HX-Target"
    return response


# -- taking a snapshot from a reply ----------------------------------------------------------------


@bp.post("/messages/<int:message_id>/snapshot")
@login_required
def take_from_message(message_id: int):
    message = access.owned_reply(db.session, user_id=current_user.id, message_id=message_id)
    project_id = message.project_id
    if project_id is None:
        raw = request.form.get("project_id", "")
        if not raw.isdigit():
            raise InvalidRequest("Choose the project this snapshot goes to.", fields={"project_id": "required"})
        project_id = int(raw)
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    try:
        result = snapshot_service.take_snapshot_from_message(
            db.session, user_id=current_user.id, project_id=project.id, message_id=message.id, limits=limits()
        )
    except DomainError as error:
        if not is_htmx():
            flash(error.message, "error")
            return redirect(url_for("projects.show", project_id=project.id))
        html = render_template("partials/_snapshot_action.html", message=message, project=project,
                               snapshot_actions=SnapshotActions(db.session, user_id=current_user.id,
                                                                     project=project),
                               error=error.message)
        return Response(html, status=error.status)
    if is_htmx():
        return render_template("partials/_snapshot_action.html", message=message, project=project, result=result,
                               snapshot_actions=SnapshotActions(db.session, user_id=current_user.id,
                                                                     project=project))
    names = ", ".join(result.from_this_source[:5]) + ("…" if len(result.from_this_source) > 5 else "")
    verb = "taken" if result.created else "already taken"
    flash(
        f"Snapshot #{result.snapshot.number} {verb}: {len(result.from_this_source)} from this reply ({names}), "
        f"{result.carried} carried over.",
        "success",
    )
    return redirect(url_for("projects.snapshot", project_id=project.id, snapshot_id=result.snapshot.id))


# -- settings --------------------------------------------------------------------------------------


@bp.route("/projects/<int:project_id>/settings", methods=["GET", "POST"])
@login_required
def settings(project_id: int):
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    form = {"name": project.name, "description": project.description}
    if request.method == "GET":
        return render_template("projects/settings.html", project=project, form=form, errors={})
    form = {"name": request.form.get("name", ""), "description": request.form.get("description", "")}
    try:
        project_service.update_project(
            db.session, user_id=current_user.id, project_id=project.id,
            name=form["name"], description=form["description"],
        )
    except InvalidRequest as error:
        db.session.rollback()
        project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
        return render_template("projects/settings.html", project=project, form=form,
                               errors={**error.fields, "_message": error.message}), 400
    flash("Project details saved.", "success")
    return redirect(url_for("projects.show", project_id=project.id))


@bp.post("/projects/<int:project_id>/archive")
@login_required
def archive(project_id: int):
    project = project_service.archive_project(db.session, user_id=current_user.id, project_id=project_id)
    flash(f"“{project.name}” is archived. Its snapshots are kept; unarchive it from its settings.", "success")
    return redirect(url_for("projects.dashboard"))


@bp.post("/projects/<int:project_id>/unarchive")
@login_required
def unarchive(project_id: int):
    project = project_service.unarchive_project(db.session, user_id=current_user.id, project_id=project_id)
    flash(f"“{project.name}” is active again.", "success")
    return redirect(url_for("projects.show", project_id=project.id))


@bp.route("/projects/<int:project_id>/delete", methods=["GET", "POST"])
@login_required
def delete(project_id: int):
    """Deletion asks for the project's name (works without JavaScript), then removes everything."""
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    if request.method == "GET":
        return render_template("projects/delete.html", project=project, error=None)
    if request.form.get("confirm_name", "").strip() != project.name:
        return render_template(
            "projects/delete.html", project=project,
            error="Type the project's name exactly as shown to confirm.",
        ), 400
    name = project.name
    project_service.delete_project(db.session, user_id=current_user.id, project_id=project.id)
    flash(f"“{name}” and its snapshots were deleted.", "success")
    return redirect(url_for("projects.dashboard"))
