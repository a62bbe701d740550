"""Reading snapshots: a project's snapshots and a snapshot's file list (no content). Who may read them is
`app.services.access`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Blob, Snapshot
from app.services.snapshots.blobs import IN_CHUNK, read_blob_contents
from app.services.snapshots.trees import read_tree

ORIGIN_REPLY = "reply"
ORIGIN_CARRIED = "carried"
ORIGIN_UPLOAD = "upload"
ORIGIN_RESTORED = "restored"


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot, without its content."""

    path: str
    blob_id: int
    size: int
    sha256: str
    git_sha: str
    is_binary: bool
    origin: str


def latest_snapshot(session: Session, project_id: int) -> Snapshot | None:
    return session.execute(
        select(Snapshot).where(Snapshot.project_id == project_id).order_by(Snapshot.number.desc()).limit(1)
    ).scalar_one_or_none()


def snapshot_for_reply(session: Session, message_id: int) -> Snapshot | None:
    """The version a reply made (the first, should there be several), or None."""
    return session.execute(
        select(Snapshot).where(Snapshot.source_message_id == message_id).order_by(Snapshot.id).limit(1)
    ).scalar_one_or_none()


def list_snapshots(session: Session, project_id: int, *, limit: int | None = None) -> list[Snapshot]:
    """The project's snapshots, newest first."""
    query = select(Snapshot).where(Snapshot.project_id == project_id).order_by(Snapshot.number.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def file_origin(origins: dict[str, str] | None, path: str) -> str:
    """Where a version's file came from: its own entry, else the version's default ("" key), else carried."""
    origins = origins or {}
    return origins.get(path) or origins.get("", ORIGIN_CARRIED)


def snapshot_blob_ids(session: Session, snapshot: Snapshot) -> dict[str, int]:
    """`path -> blob id` of a version (its tree; no query when this process read it before)."""
    return read_tree(session, snapshot.project_id, snapshot.root_tree)


def _entries(session: Session, snapshot: Snapshot, files: dict[str, int]) -> list[FileEntry]:
    """File entries for `path -> blob id`, sorted by path: one query per `IN_CHUNK` distinct blobs."""
    meta: dict[int, tuple] = {}
    unique = sorted(set(files.values()))
    for start in range(0, len(unique), IN_CHUNK):
        rows = session.execute(
            select(Blob.id, Blob.size, Blob.sha256, Blob.git_sha, Blob.is_binary)
            .where(Blob.id.in_(unique[start : start + IN_CHUNK]))
        )
        meta.update({row[0]: tuple(row[1:]) for row in rows})
    origins = snapshot.origins
    return [
        FileEntry(path, blob_id, *meta[blob_id], file_origin(origins, path))
        for path, blob_id in sorted(files.items())
    ]


def list_snapshot_files(session: Session, snapshot_id: int) -> list[FileEntry]:
    """The snapshot's files sorted by path ([] for no such snapshot), reading no content: the snapshot row
    (no query when the session has it), its trees (none when this process read them before) and one query
    for the blobs' sizes."""
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:  # as the file rows' query answered: nothing to list
        return []
    return _entries(session, snapshot, snapshot_blob_ids(session, snapshot))


def snapshot_file_entry(session: Session, snapshot_id: int, path: str) -> FileEntry:
    """One file of a snapshot without its content (its hash tags it), or `NotFound`."""
    snapshot = session.get(Snapshot, snapshot_id)
    blob_id = snapshot_blob_ids(session, snapshot).get(path) if snapshot is not None else None
    if snapshot is None or blob_id is None:
        raise NotFound(f"This snapshot has no file {path!r}.")
    return _entries(session, snapshot, {path: blob_id})[0]


def read_snapshot_file(session: Session, snapshot_id: int, path: str) -> tuple[FileEntry, bytes]:
    """One file of a snapshot and its content, or `NotFound`."""
    entry = snapshot_file_entry(session, snapshot_id, path)
    return entry, read_blob_contents(session, [entry.blob_id])[entry.blob_id]
