"""The projects and snapshots part of the JSON API (`/api/projects...`, `/api/snapshots/...`): list,
create, update and delete projects; take, list, preview, diff, download and restore snapshots.

Every object is looked up through the signed-in user, so another user's project or snapshot is a 404.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Response, jsonify
from flask_login import current_user, login_required

from app.errors import InvalidRequest, NotFound
from app.extensions import db
from app.models import Project, Snapshot
from app.services import access
from app.services import projects as project_service
from app.services import snapshots as snapshot_service
from app.services.snapshots import FileEntry
from app.web.api import bp, int_arg, read_json
from app.web.projects import limits, zip_response
from app.web.request_limits import limit_body

# A file's content grows in JSON: base64 by 4/3, text by its escapes (a client escaping non-ASCII as
# \uXXXX about doubles it). An entry adds its path (up to 1,024 bytes, escaped) and its keys.
JSON_CONTENT_GROWTH = 2
JSON_ENTRY_OVERHEAD_BYTES = 2_200
JSON_BODY_OVERHEAD_BYTES = 64 * 1024


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
        "workspace_id": project.workspace_id,
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


@bp.get("/projects")
@login_required
def api_list_projects():
    workspace_id = int_arg("workspace_id")
    summaries = project_service.summarise_projects(db.session, user_id=current_user.id, workspace_id=workspace_id)
    return jsonify(projects=[project_json(s.project, s.last_snapshot_id) for s in summaries])


@bp.post("/projects")
@login_required
def api_create_project():
    body = read_json()
    project = project_service.create_project(
        db.session, user_id=current_user.id, name=body.get("name"), description=body.get("description", ""),
        workspace_id=body.get("workspace_id"),
    )
    return jsonify(project_json(project, None)), 201


@bp.get("/projects/<int:project_id>")
@login_required
def api_get_project(project_id: int):
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    return jsonify(project_json(project, latest_snapshot_id(project.id)))


@bp.patch("/projects/<int:project_id>")
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


@bp.delete("/projects/<int:project_id>")
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


def snapshot_body_max_bytes() -> int:
    """The largest snapshot upload a client can legitimately send: every file's content at the limits,
    grown by JSON's encoding, plus each entry's path and keys and room for the rest of the body."""
    snapshot_limits = limits()
    content = min(snapshot_limits.max_files * snapshot_limits.max_file_bytes, snapshot_limits.max_total_bytes)
    return (content * JSON_CONTENT_GROWTH + snapshot_limits.max_files * JSON_ENTRY_OVERHEAD_BYTES
            + JSON_BODY_OVERHEAD_BYTES)


@bp.post("/projects/<int:project_id>/snapshots")
@login_required
@limit_body(snapshot_body_max_bytes)
def api_take_snapshot(project_id: int):
    # A snapshot's request names at most every file once to write and every old file once to delete.
    body = read_json(max_entries=2 * limits().max_files)
    # Someone else's project is a 404 whatever the body holds, so it is asked before the body is checked
    # (the service asks again: the project is then in the session, and no query is sent).
    access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    if "message_id" in body:
        message_id = body["message_id"]
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise InvalidRequest("message_id must be a whole number.", fields={"message_id": "not an id"})
        result = snapshot_service.take_snapshot_from_message(
            db.session, user_id=current_user.id, project_id=project_id, message_id=message_id, limits=limits()
        )
    else:
        files, deletions = incoming_files(body)
        summary = body.get("summary") or ""
        if not isinstance(summary, str):
            raise InvalidRequest("summary must be text.", fields={"summary": "not text"})
        result = snapshot_service.take_snapshot_from_files(
            db.session, user_id=current_user.id, project_id=project_id, files=files, limits=limits(),
            summary=summary, deletions=deletions, carry_over=body.get("carry_over") is True,
        )
    body = snapshot_json(result.snapshot, snapshot_service.list_snapshot_files(db.session, result.snapshot.id))
    body.update(created=result.created, from_this_source=result.from_this_source, deleted=result.deleted,
                carried=result.carried, warnings=result.warnings)
    return jsonify(body), 201 if result.created else 200


@bp.get("/projects/<int:project_id>/snapshots")
@login_required
def api_list_snapshots(project_id: int):
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    return jsonify(snapshots=[snapshot_json(s) for s in snapshot_service.list_snapshots(db.session, project.id)])


@bp.get("/projects/<int:project_id>/preview")
@login_required
def api_preview(project_id: int):
    project = access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    snapshot_id = int_arg("snapshot_id")
    if snapshot_id is None:
        snap = snapshot_service.latest_snapshot(db.session, project.id)
        if snap is None:
            raise NotFound("This project has no snapshot yet.")
    else:
        snap = access.owned_snapshot(
            db.session, user_id=current_user.id, snapshot_id=snapshot_id, project_id=project.id
        )
    return jsonify(snapshot_id=snap.id, flagged_paths=list(snap.flagged_paths or []),
                   files=snapshot_service.api_preview(db.session, snap))


@bp.get("/snapshots/<int:snapshot_id>")
@login_required
def api_get_snapshot(snapshot_id: int):
    snap = access.owned_snapshot(db.session, user_id=current_user.id, snapshot_id=snapshot_id)
    return jsonify(snapshot_json(snap, snapshot_service.list_snapshot_files(db.session, snap.id)))


@bp.get("/snapshots/<int:snapshot_id>/diff")
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
             "too_large_to_diff": c.too_large,
             "redacted": c.redacted, "old_size": c.old_size, "new_size": c.new_size}
            for c in result.changed
        ],
        unchanged_count=result.unchanged_count,
    )


@bp.get("/snapshots/<int:snapshot_id>/archive")
@login_required
def api_archive(snapshot_id: int):
    return zip_response(access.owned_snapshot(db.session, user_id=current_user.id, snapshot_id=snapshot_id))


@bp.post("/snapshots/<int:snapshot_id>/restore")
@login_required
def api_restore(snapshot_id: int):
    result = snapshot_service.restore_snapshot(
        db.session, user_id=current_user.id, snapshot_id=snapshot_id, limits=limits()
    )
    files = snapshot_service.list_snapshot_files(db.session, result.snapshot.id)
    return jsonify(snapshot_json(result.snapshot, files)), 201
