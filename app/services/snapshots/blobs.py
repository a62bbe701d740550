"""Blobs: one row per distinct file content (SHA-256), shared by every snapshot that holds it.

Blobs are inserted race-free (the unique SHA-256 decides; the loser reuses the winner's row) and reused
blobs are read `FOR SHARE`, so `collect_garbage_blobs` cannot delete a blob a snapshot being written
points at.
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Blob, ProjectBlob
from app.models.base import utcnow
from app.runtime import jobs

log = logging.getLogger(__name__)

# Ids per `IN (...)` query: keeps each statement small whatever the snapshot's size.
IN_CHUNK = 500
BINARY_SNIFF_BYTES = 8192


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def git_blob_sha(content: bytes) -> str:
    """Git's object id for this content as a blob (`git hash-object`), computed locally."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def looks_binary(content: bytes) -> bool:
    """Binary when the start holds a NUL byte or the bytes are not UTF-8 (as Git and most editors do)."""
    if b"\0" in content[:BINARY_SNIFF_BYTES]:
        return True
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def store_blobs(session: Session, contents: list[bytes]) -> dict[str, int]:
    """Blob ids by SHA-256 for these contents, inserting the ones not stored yet. Does not commit.

    Existing blobs are read `FOR SHARE`: garbage collection cannot delete them before this transaction
    ends. Two transactions inserting the same new content race on the unique SHA-256; the loser falls
    back to reading the winner's row.
    """
    by_sha = {sha256_hex(content): content for content in contents}
    ids = _existing_blob_ids(session, list(by_sha))
    missing = [sha for sha in by_sha if sha not in ids]
    if not missing:
        return ids
    rows = [
        {
            "sha256": sha,
            "git_sha": git_blob_sha(by_sha[sha]),
            "size": len(by_sha[sha]),
            "is_binary": looks_binary(by_sha[sha]),
            "content": by_sha[sha],
            "created_at": utcnow(),
        }
        for sha in missing
    ]
    try:
        with session.begin_nested():
            session.execute(insert(Blob), rows)
    except IntegrityError:
        for row in rows:  # another snapshot stored some of them first: insert one by one
            try:
                with session.begin_nested():
                    session.execute(insert(Blob), [row])
            except IntegrityError:
                log.info("blob %s stored concurrently; reusing it", row["sha256"][:12])
    ids.update(_existing_blob_ids(session, missing))
    return ids


def _existing_blob_ids(session: Session, shas: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(shas), IN_CHUNK):
        chunk = shas[start : start + IN_CHUNK]
        rows = session.execute(
            select(Blob.sha256, Blob.id).where(Blob.sha256.in_(chunk)).with_for_update(read=True)
        )
        ids.update({sha: blob_id for sha, blob_id in rows})
    return ids


def read_blob_contents(session: Session, blob_ids: list[int]) -> dict[int, bytes]:
    """Contents by blob id, in chunked queries (a handful of queries whatever the file count)."""
    contents: dict[int, bytes] = {}
    unique = sorted(set(blob_ids))
    for start in range(0, len(unique), IN_CHUNK):
        rows = session.execute(select(Blob.id, Blob.content).where(Blob.id.in_(unique[start : start + IN_CHUNK])))
        contents.update({blob_id: bytes(content) for blob_id, content in rows})
    return contents


def collect_garbage_blobs(session: Session, candidate_ids: list[int] | None = None) -> int:
    """Delete blobs no project holds (`project_blobs`) (among `candidate_ids`, or all); returns how many. Commits.

    Each candidate is locked `FOR UPDATE` before the reference check, so a snapshot that is reusing it
    (it holds the blob `FOR SHARE`) either finishes first, and the blob is then referenced and kept, or
    waits and stores the content again after this commits.
    """
    if candidate_ids is None:
        candidate_ids = unreferenced_blob_ids(session)
    removed = 0
    for start in range(0, len(candidate_ids), IN_CHUNK):
        chunk = candidate_ids[start : start + IN_CHUNK]
        locked = list(session.scalars(select(Blob.id).where(Blob.id.in_(chunk)).with_for_update()))
        if not locked:
            continue
        referenced = set(
            session.scalars(select(ProjectBlob.blob_id).where(ProjectBlob.blob_id.in_(locked)).distinct())
        )
        unused = [blob_id for blob_id in locked if blob_id not in referenced]
        if unused:
            removed += session.execute(delete(Blob).where(Blob.id.in_(unused))).rowcount or 0
        session.commit()
    if removed:
        log.info("collected %d unused blobs", removed)
    return removed


def unreferenced_blob_ids(session: Session) -> list[int]:
    """Blobs no project holds, by an anti-join on `project_blobs`' `blob_id` index (not a scan of every id).

    Only candidates: `collect_garbage_blobs` re-checks each under its lock before deleting it.
    """
    referenced = select(ProjectBlob.project_id).where(ProjectBlob.blob_id == Blob.id)
    return list(session.scalars(select(Blob.id).where(~referenced.exists())))


def collect_all_garbage_blobs(session: Session) -> int:
    """The periodic job: every unreferenced blob, e.g. after a project delete that died midway."""
    return collect_garbage_blobs(session)


jobs.register_periodic("collect_garbage_blobs", "app.services.snapshots:collect_all_garbage_blobs", 3600)
