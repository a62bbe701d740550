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
from markupsafe import Markup

from app import runtime
from app.errors import DomainError, InvalidRequest, NotFound
from app.extensions import db
from app.models import Snapshot
from app.models.projects import PROJECT_ARCHIVED
from app.runtime.view_cache import cached_view
from app.services import access
from app.services import projects as project_service
from app.services import snapshots as snapshot_service
from app.services.snapshots import FileEntry, SnapshotLimits
from app.web.api import int_arg
from app.web.observability import path_carries_credential
from app.web.security import framable_preview
from app.web.snapshot_actions import SnapshotActions
from app.web.snapshot_preview import (
    CONSOLE_SCRIPT_PATH,
    console_script_response,
    preview_mimetype,
    preview_token,
    site_file_response,
    snapshot_for_token,
)

bp = Blueprint("projects", __name__)

RECENT_REPLIES_SHOWN = 10
HTML_EXTENSIONS = (".html", ".htm")


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


def default_file(entries: list[FileEntry]) -> FileEntry | None:
    by_path = {e.path: e for e in entries}
    for candidate in ("README.md", "readme.md", "README", "index.html"):
        if candidate in by_path:
            return by_path[candidate]
    return entries[0] if entries else None


# A file of a version never changes; the browser keeps it and asks again with its tag.
FILE_VIEW_CACHE_CONTROL = "private, no-cache"
PREVIEW_FILE_CACHE_CONTROL = "private, max-age=300"


@dataclass
class FileView:
    entry: FileEntry
    highlighted: Markup | None
    preview: snapshot_service.PreviewText | None
    language: str
    is_html: bool
    rendered_url: str | None


def file_view(snapshot: Snapshot, entry: FileEntry, *, rendered: bool) -> FileView:
    """Read one file (one query) and prepare it for display: redacted, truncated, highlighted."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer

    is_html = entry.path.lower().endswith(HTML_EXTENSIONS) and not entry.is_binary
    language = snapshot_service.language_for_path(entry.path)
    if entry.is_binary:
        return FileView(entry, None, None, language, False, None)
    if rendered and is_html:
        url = url_for("projects.rendered_file", token=preview_token(snapshot, current_user.id), path=entry.path)
        return FileView(entry, None, None, language, True, url)

    def render() -> dict:
        content = snapshot_service.read_blob_contents(db.session, [entry.blob_id])[entry.blob_id]
        preview = snapshot_service.preview_text(entry.path, content)
        lexer_class = snapshot_service.lexer_class_for_path(entry.path) or TextLexer
        formatter = HtmlFormatter(cssclass="highlight", linenos="table", wrapcode=True)
        html = highlight(preview.text, lexer_class(stripnl=False, ensurenl=False), formatter)
        return {"html": html, "preview": [preview.text, preview.truncated, preview.total_lines, preview.shown_lines,
                                          preview.redactions, list(preview.redacted_kinds)]}

    # A blob never changes: its view (redacted by path, highlighted) is kept by content hash and path.
    path_key = hashlib.sha256(entry.path.encode()).hexdigest()[:32]
    cached = cached_view(f"file:v1:{entry.sha256}:{path_key}", render)
    text, truncated, total_lines, shown_lines, redactions, kinds = cached["preview"]
    preview = snapshot_service.PreviewText(text, truncated, total_lines, shown_lines, redactions, tuple(kinds))
    return FileView(entry, Markup(cached["html"]), preview, language, is_html, None)


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
        selected = default_file(entries)
    rendered = request.args.get("view") == "rendered"
    if is_htmx() and request.headers.get("HX-Target") == "file-view":
        # One file of an immutable version: tagged by the version and the blob (a rendered HTML view
        # carries a preview link that expires, so it is never revalidated).
        etag = f"fv-{snap.id}-{selected.sha256[:32]}" if selected and not rendered else None
        if etag and not_modified(etag):
            return answer_not_modified(etag, FILE_VIEW_CACHE_CONTROL)
        view = file_view(snap, selected, rendered=rendered) if selected else None
        response = Response(render_template("partials/_snapshot_file.html", project=project, snapshot=snap, view=view))
        if etag:
            response.set_etag(etag)
            response.headers["Cache-Control"] = FILE_VIEW_CACHE_CONTROL
    else:
        view = file_view(snap, selected, rendered=rendered) if selected else None
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
