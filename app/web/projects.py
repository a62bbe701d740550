"""Projects and snapshots: dashboard, project page, preview, diff, download, restore, settings, and the
JSON API of the contract (`/api/projects...`, `/api/snapshots/...`).

Routes parse input, call `app.services.projects` / `app.services.snapshots`, and render or return JSON.
Every object is looked up through the signed-in user, so another user's project, snapshot or message is
a 404 in pages and in the API alike.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass, field
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup
from sqlalchemy import select

from app import runtime
from app.extensions import db
from app.models import ChatMessage, Project, Snapshot
from app.models.chat import ROLE_ASSISTANT, STATUS_PENDING, STATUS_STREAMING
from app.models.projects import PROJECT_ACTIVE, PROJECT_ARCHIVED
from app.services import projects as project_service
from app.services import snapshots as snapshot_service
from app.services.errors import DomainError, InvalidRequest, NotFound
from app.services.snapshots import FileEntry, SnapshotLimits
from app.web.api import bp as api
from app.web.api import int_arg, read_json
from app.web.publish import panel_view as publish_panel_view
from app.web.security import framable_preview

bp = Blueprint("projects", __name__)

PREVIEW_TOKEN_SALT = "sorya.snapshot-preview"
PREVIEW_TOKEN_TTL_S = 3600
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


@dataclass
class SnapshotActionState:
    """What the *Take snapshot* control shows for one reply."""

    files: list[str]
    deleted: list[str]
    warnings: list[str]
    refused: list[str]
    in_progress: bool
    existing: Snapshot | None
    projects: list[Project]

    @property
    def shown(self) -> bool:
        return bool(self.files or self.deleted or self.refused)


@bp.app_template_global("snapshot_action_state")
def snapshot_action_state(message: ChatMessage, project: Project | None) -> SnapshotActionState:
    """Parse the reply (pure, fast) and find a snapshot already taken from it: one query per project per
    request, however many replies the page shows."""
    parsed = snapshot_service.parse_reply_files(
        message.content or "", reply_finished=message.status not in (STATUS_PENDING, STATUS_STREAMING)
    )
    state = SnapshotActionState(
        files=[f.path for f in parsed.written],
        deleted=parsed.deleted_paths,
        warnings=parsed.warnings,
        refused=[item.sentence() for item in parsed.refused],
        in_progress=message.status in (STATUS_PENDING, STATUS_STREAMING),
        existing=None,
        projects=[],
    )
    if not state.shown or message.role != ROLE_ASSISTANT:
        state.files, state.deleted, state.refused = [], [], []
        return state
    project_id = project.id if project is not None else message.project_id
    if project_id is not None:
        cache: dict[int, dict[int, Snapshot]] = g.setdefault("_snapshots_by_message", {})
        if project_id not in cache:
            rows = db.session.scalars(
                select(Snapshot).where(Snapshot.project_id == project_id, Snapshot.source_message_id.is_not(None))
            )
            cache[project_id] = {row.source_message_id: row for row in rows}
        state.existing = cache[project_id].get(message.id)
    else:
        if "_active_projects" not in g:
            g._active_projects = list(
                db.session.scalars(
                    select(Project)
                    .where(Project.user_id == current_user.id, Project.status == PROJECT_ACTIVE)
                    .order_by(Project.updated_at.desc())
                )
            )
        state.projects = g._active_projects
    return state


# -- dashboard and project pages -------------------------------------------------------------------


@bp.get("/projects")
@login_required
def dashboard():
    summaries = project_service.summarise_projects(db.session, user_id=current_user.id)
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
    flash(f"Project “{project.name}” created. Take a snapshot from a reply, or upload files.", "success")
    return redirect(url_for("projects.show", project_id=project.id))


def recent_replies_with_files(project: Project) -> list[ChatMessage]:
    """The project's latest assistant replies that contain files (newest first)."""
    messages = db.session.scalars(
        select(ChatMessage)
        .where(
            ChatMessage.user_id == project.user_id,
            ChatMessage.project_id == project.id,
            ChatMessage.role == ROLE_ASSISTANT,
        )
        .order_by(ChatMessage.id.desc())
        .limit(RECENT_REPLIES_SHOWN * 3)
    )
    with_files = [m for m in messages if snapshot_service.parse_reply_files(m.content or "").has_files]
    return with_files[:RECENT_REPLIES_SHOWN]


@bp.get("/projects/<int:project_id>")
@login_required
def show(project_id: int):
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
    snapshots = snapshot_service.list_snapshots(db.session, project.id, limit=50)
    latest = snapshots[0] if snapshots else None
    entries = snapshot_service.list_snapshot_files(db.session, latest.id) if latest else []
    return render_template(
        "projects/show.html",
        project=project,
        snapshots=snapshots,
        latest=latest,
        tree=build_file_tree(entries),
        entries=entries,
        replies=recent_replies_with_files(project),
        panel=publish_panel_view(project),
    )


# -- snapshot preview ------------------------------------------------------------------------------


def default_file(entries: list[FileEntry]) -> FileEntry | None:
    by_path = {e.path: e for e in entries}
    for candidate in ("README.md", "readme.md", "README", "index.html"):
        if candidate in by_path:
            return by_path[candidate]
    return entries[0] if entries else None


def preview_token(snapshot: Snapshot) -> str:
    serializer = URLSafeTimedSerializer(current_app.secret_key, salt=PREVIEW_TOKEN_SALT)
    return serializer.dumps({"s": snapshot.id, "u": current_user.id})


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
        url = url_for("projects.rendered_file", token=preview_token(snapshot), path=entry.path)
        return FileView(entry, None, None, language, True, url)
    content = snapshot_service.read_blob_contents(db.session, [entry.blob_id])[entry.blob_id]
    preview = snapshot_service.preview_text(entry.path, content)
    lexer_class = snapshot_service.lexer_class_for_path(entry.path) or TextLexer
    formatter = HtmlFormatter(cssclass="highlight", linenos="table", wrapcode=True)
    highlighted = Markup(highlight(preview.text, lexer_class(stripnl=False, ensurenl=False), formatter))
    return FileView(entry, highlighted, preview, language, is_html, None)


@bp.get("/projects/<int:project_id>/snapshots/<int:snapshot_id>")
@login_required
def snapshot(project_id: int, snapshot_id: int):
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
    snap = snapshot_service.get_snapshot(db.session, current_user.id, snapshot_id, project_id=project.id)
    entries = snapshot_service.list_snapshot_files(db.session, snap.id)
    wanted = request.args.get("path")
    if wanted is not None:
        selected = next((e for e in entries if e.path == wanted), None)
        if selected is None:
            raise NotFound(f"Snapshot #{snap.number} has no file {wanted!r}.")
    else:
        selected = default_file(entries)
    view = file_view(snap, selected, rendered=request.args.get("view") == "rendered") if selected else None
    if is_htmx() and request.headers.get("HX-Target") == "file-view":
        response = Response(render_template("partials/_snapshot_file.html", project=project, snapshot=snap, view=view))
    else:
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
@framable_preview(allow_scripts=True)
def rendered_file(token: str, path: str):
    """A snapshot's file served for the sandboxed iframe: authorised by a signed, expiring token in the
    URL (the frame's opaque origin sends no cookies), so relative links to sibling files also work."""
    serializer = URLSafeTimedSerializer(current_app.secret_key, salt=PREVIEW_TOKEN_SALT)
    try:
        claims = serializer.loads(token, max_age=PREVIEW_TOKEN_TTL_S)
        snap = snapshot_service.get_snapshot(db.session, int(claims["u"]), int(claims["s"]))
    except (BadSignature, KeyError, TypeError, ValueError):
        raise NotFound("This preview link has expired; reload the snapshot page.") from None
    entry, content = snapshot_service.read_snapshot_file(db.session, snap.id, path)
    mimetype = mimetypes.guess_type(entry.path)[0] or ("application/octet-stream" if entry.is_binary else "text/plain")
    if not entry.is_binary:
        content = snapshot_service.redact_secrets(entry.path, content.decode("utf-8", errors="replace")).text.encode()
        mimetype += "; charset=utf-8"
    response = Response(content, headers={"Content-Type": mimetype})
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def zip_response(snap: Snapshot) -> Response:
    project = db.session.get(Project, snap.project_id)
    folder = snapshot_service.archive_folder_name(project, snap)
    chunks = snapshot_service.stream_snapshot_zip(db.session, snap, folder)
    response = Response(stream_with_context(chunks), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{folder}.zip"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/projects/<int:project_id>/snapshots/<int:snapshot_id>/download")
@login_required
def download(project_id: int, snapshot_id: int):
    snap = snapshot_service.get_snapshot(db.session, current_user.id, snapshot_id, project_id=project_id)
    return zip_response(snap)


@bp.post("/projects/<int:project_id>/snapshots/<int:snapshot_id>/restore")
@login_required
def restore(project_id: int, snapshot_id: int):
    snapshot_service.get_snapshot(db.session, current_user.id, snapshot_id, project_id=project_id)
    result = snapshot_service.restore_snapshot(
        db.session, user_id=current_user.id, snapshot_id=snapshot_id, limits=limits()
    )
    flash(f"Restored: snapshot #{result.snapshot.number} now holds the files of the one you chose.", "success")
    return redirect(url_for("projects.snapshot", project_id=project_id, snapshot_id=result.snapshot.id))


# -- diff ------------------------------------------------------------------------------------------


@bp.get("/projects/<int:project_id>/diff")
@login_required
def diff(project_id: int):
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
    snapshots = snapshot_service.list_snapshots(db.session, project.id)
    view = "split" if request.args.get("view") == "split" else "inline"
    target_id = int_arg("target")
    if target_id is not None:  # someone else's id, or one of another project, is a 404 like everywhere
        snapshot_service.get_snapshot(db.session, current_user.id, target_id, project_id=project.id)
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
    message = snapshot_service.find_message_for_user(db.session, current_user.id, message_id)
    project_id = message.project_id
    if project_id is None:
        raw = request.form.get("project_id", "")
        if not raw.isdigit():
            raise InvalidRequest("Choose the project this snapshot goes to.", fields={"project_id": "required"})
        project_id = int(raw)
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
    try:
        result = snapshot_service.take_snapshot_from_message(
            db.session, user_id=current_user.id, project_id=project.id, message_id=message.id, limits=limits()
        )
    except DomainError as error:
        if not is_htmx():
            flash(error.message, "error")
            return redirect(url_for("projects.show", project_id=project.id))
        html = render_template("partials/_snapshot_action.html", message=message, project=project, error=error.message)
        return Response(html, status=error.status)
    if is_htmx():
        return render_template("partials/_snapshot_action.html", message=message, project=project, result=result)
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
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
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
        project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
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
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
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


# -- JSON API --------------------------------------------------------------------------------------


def iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def project_json(project: Project, last_snapshot_id: int | None) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "status": project.status,
        "repo_full_name": project.repo_full_name,
        "last_snapshot_id": last_snapshot_id,
        "created_at": iso(project.created_at),
        "updated_at": iso(project.updated_at),
    }


def snapshot_json(snap: Snapshot, files: list[FileEntry] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": snap.id,
        "project_id": snap.project_id,
        "number": snap.number,
        "summary": snap.summary,
        "parent_id": snap.parent_id,
        "source_message_id": snap.source_message_id,
        "file_count": snap.file_count,
        "total_bytes": snap.total_bytes,
        "flagged_paths": list(snap.flagged_paths or []),
        "created_at": iso(snap.created_at),
    }
    if files is not None:
        body["files"] = [
            {"path": e.path, "size": e.size, "sha256": e.sha256, "git_sha": e.git_sha, "origin": e.origin,
             "binary": e.is_binary}
            for e in files
        ]
    return body


def latest_snapshot_id(project_id: int) -> int | None:
    latest = snapshot_service.latest_snapshot(db.session, project_id)
    return latest.id if latest else None


@api.get("/projects")
@login_required
def api_list_projects():
    summaries = project_service.summarise_projects(db.session, user_id=current_user.id)
    return jsonify(projects=[project_json(s.project, s.last_snapshot_id) for s in summaries])


@api.post("/projects")
@login_required
def api_create_project():
    body = read_json()
    project = project_service.create_project(
        db.session, user_id=current_user.id, name=body.get("name"), description=body.get("description", "")
    )
    return jsonify(project_json(project, None)), 201


@api.get("/projects/<int:project_id>")
@login_required
def api_get_project(project_id: int):
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
    return jsonify(project_json(project, latest_snapshot_id(project.id)))


@api.patch("/projects/<int:project_id>")
@login_required
def api_update_project(project_id: int):
    body = read_json()
    unknown = sorted(set(body) - {"name", "description", "status"})
    if unknown:
        raise InvalidRequest(f"Unknown fields: {', '.join(unknown)}.", fields={k: "unknown field" for k in unknown})
    project = project_service.update_project(
        db.session, user_id=current_user.id, project_id=project_id,
        name=body.get("name"), description=body.get("description"), status=body.get("status"),
    )
    return jsonify(project_json(project, latest_snapshot_id(project.id)))


@api.delete("/projects/<int:project_id>")
@login_required
def api_delete_project(project_id: int):
    project_service.delete_project(db.session, user_id=current_user.id, project_id=project_id)
    return Response(status=204)


def incoming_files(body: dict[str, Any]) -> tuple[list[snapshot_service.IncomingFile], list[str]]:
    """The `files` of a snapshot upload: `{"path", "content", "encoding"?: "utf-8" | "base64"}`, or
    `{"path", "delete": true}` (with `carry_over`). Errors name the item at fault."""
    raw = body.get("files")
    if not isinstance(raw, list):
        raise InvalidRequest("files must be a list of {path, content}.", fields={"files": "not a list"})
    files, deletions = [], []
    for index, item in enumerate(raw):
        where = f"files[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise InvalidRequest(f"{where} must be an object with a path.", fields={where: "missing path"})
        path = snapshot_service.clean_path(item["path"])
        if item.get("delete") is True:
            deletions.append(path)
            continue
        content = item.get("content")
        if not isinstance(content, str):
            raise InvalidRequest(f"{where}.content must be a string.", fields={where: "missing content"})
        encoding = item.get("encoding", "utf-8")
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest(f"{where}.content is not valid base64.", fields={where: "bad base64"}) from None
        elif encoding == "utf-8":
            data = content.encode("utf-8", errors="surrogatepass")
        else:
            raise InvalidRequest(f"{where}.encoding must be utf-8 or base64.", fields={where: "unknown encoding"})
        files.append(snapshot_service.IncomingFile(path, data, snapshot_service.ORIGIN_UPLOAD))
    return files, deletions


@api.post("/projects/<int:project_id>/snapshots")
@login_required
def api_take_snapshot(project_id: int):
    body = read_json()
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
    if "message_id" in body:
        message_id = body["message_id"]
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise InvalidRequest("message_id must be a whole number.", fields={"message_id": "not an id"})
        result = snapshot_service.take_snapshot_from_message(
            db.session, user_id=current_user.id, project_id=project.id, message_id=message_id, limits=limits()
        )
    else:
        files, deletions = incoming_files(body)
        summary = body.get("summary") or ""
        if not isinstance(summary, str):
            raise InvalidRequest("summary must be text.", fields={"summary": "not text"})
        result = snapshot_service.take_snapshot_from_files(
            db.session, user_id=current_user.id, project_id=project.id, files=files, limits=limits(),
            summary=summary, deletions=deletions, carry_over=body.get("carry_over") is True,
        )
    body = snapshot_json(result.snapshot, snapshot_service.list_snapshot_files(db.session, result.snapshot.id))
    body.update(created=result.created, from_this_source=result.from_this_source, deleted=result.deleted,
                carried=result.carried, warnings=result.warnings)
    return jsonify(body), 201


@api.get("/projects/<int:project_id>/snapshots")
@login_required
def api_list_snapshots(project_id: int):
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
    return jsonify(snapshots=[snapshot_json(s) for s in snapshot_service.list_snapshots(db.session, project.id)])


@api.get("/projects/<int:project_id>/preview")
@login_required
def api_preview(project_id: int):
    project = snapshot_service.get_project_for_user(db.session, current_user.id, project_id)
    snapshot_id = int_arg("snapshot_id")
    if snapshot_id is None:
        snap = snapshot_service.latest_snapshot(db.session, project.id)
        if snap is None:
            raise NotFound("This project has no snapshot yet.")
    else:
        snap = snapshot_service.get_snapshot(db.session, current_user.id, snapshot_id, project_id=project.id)
    return jsonify(snapshot_id=snap.id, flagged_paths=list(snap.flagged_paths or []),
                   files=snapshot_service.api_preview(db.session, snap))


@api.get("/snapshots/<int:snapshot_id>")
@login_required
def api_get_snapshot(snapshot_id: int):
    snap = snapshot_service.get_snapshot(db.session, current_user.id, snapshot_id)
    return jsonify(snapshot_json(snap, snapshot_service.list_snapshot_files(db.session, snap.id)))


@api.get("/snapshots/<int:snapshot_id>/diff")
@login_required
def api_diff(snapshot_id: int):
    result = snapshot_service.diff_snapshots(
        db.session, user_id=current_user.id, snapshot_id=snapshot_id, against_id=int_arg("against")
    )
    return jsonify(
        snapshot_id=result.target.id,
        against=result.base.id if result.base else None,
        added=[{"path": e.path, "size": e.size, "sha256": e.sha256} for e in result.added],
        removed=[{"path": e.path, "size": e.size, "sha256": e.sha256} for e in result.removed],
        changed=[
            {"path": c.path, "unified_diff": c.unified_diff, "binary": c.is_binary, "too_large": c.too_large,
             "redacted": c.redacted, "old_size": c.old_size, "new_size": c.new_size}
            for c in result.changed
        ],
        unchanged_count=result.unchanged_count,
    )


@api.get("/snapshots/<int:snapshot_id>/archive")
@login_required
def api_archive(snapshot_id: int):
    return zip_response(snapshot_service.get_snapshot(db.session, current_user.id, snapshot_id))


@api.post("/snapshots/<int:snapshot_id>/restore")
@login_required
def api_restore(snapshot_id: int):
    result = snapshot_service.restore_snapshot(
        db.session, user_id=current_user.id, snapshot_id=snapshot_id, limits=limits()
    )
    files = snapshot_service.list_snapshot_files(db.session, result.snapshot.id)
    return jsonify(snapshot_json(result.snapshot, files)), 201
