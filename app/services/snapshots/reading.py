"""Reading snapshots: a project's snapshots and a snapshot's file list (no content). Who may read them is
`app.services.access`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Blob, Snapshot, SnapshotFile
from app.services.snapshots.blobs import read_blob_contents

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


def list_snapshot_files(session: Session, snapshot_id: int) -> list[FileEntry]:
    """The snapshot's files sorted by path, in one query that reads no content."""
    rows = session.execute(
        select(
            SnapshotFile.path,
            SnapshotFile.blob_id,
            Blob.size,
            Blob.sha256,
            Blob.git_sha,
            Blob.is_binary,
            SnapshotFile.origin,
        )
        .join(Blob, Blob.id == SnapshotFile.blob_id)
        .where(SnapshotFile.snapshot_id == snapshot_id)
    )
    return sorted((FileEntry(*row) for row in rows), key=lambda entry: entry.path)


def snapshot_file_entry(session: Session, snapshot_id: int, path: str) -> FileEntry:
    """One file of a snapshot without its content (its hash tags it), or `NotFound`. One query."""
    rows = session.execute(
        select(
            SnapshotFile.path,
            SnapshotFile.blob_id,
            Blob.size,
            Blob.sha256,
            Blob.git_sha,
            Blob.is_binary,
            SnapshotFile.origin,
        )
        .join(Blob, Blob.id == SnapshotFile.blob_id)
        .where(SnapshotFile.snapshot_id == snapshot_id, SnapshotFile.path == path)
    ).all()
    # Compared again here: a case-insensitive collation would also match another spelling of the path.
    entry = next((FileEntry(*row) for row in rows if row[0] == path), None)
    if entry is None:
        raise NotFound(f"This snapshot has no file {path!r}.")
    return entry


def read_snapshot_file(session: Session, snapshot_id: int, path: str) -> tuple[FileEntry, bytes]:
    """One file of a snapshot and its content, or `NotFound`. Two queries whatever the snapshot's size."""
    entry = snapshot_file_entry(session, snapshot_id, path)
    return entry, read_blob_contents(session, [entry.blob_id])[entry.blob_id]

