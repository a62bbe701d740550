"""The per-user storage quota: bytes of distinct file contents that a user's snapshots hold.

A content counts once for a user however many of their snapshots or projects hold it, and it counts
for each user who holds it (another user's copy is no storage of yours). A snapshot is refused when the
contents new to its owner would take them past `SnapshotLimits.storage_quota_bytes` (0: no quota).

Two snapshots of the same user written at the same moment in different projects each check against
what was stored before either: together they may pass the quota by at most one snapshot's size
(`SNAPSHOT_MAX_TOTAL_BYTES`). Locking the user's row for every snapshot would serialise them with the
ledger's writes, which is not worth that margin.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import TooLarge
from app.models import Blob, Project, ProjectBlob
from app.services.snapshots.blobs import IN_CHUNK


@dataclass(frozen=True)
class StorageUsage:
    used_bytes: int
    quota_bytes: int  # 0: no quota


def _user_blob_ids(user_id: int):
    return (
        select(ProjectBlob.blob_id)
        .join(Project, Project.id == ProjectBlob.project_id)
        .where(Project.user_id == user_id)
    )


def storage_used_bytes(session: Session, user_id: int) -> int:
    """Bytes of the distinct contents the user's snapshots hold. One query; reads only."""
    return int(session.scalar(select(func.coalesce(func.sum(Blob.size), 0)).where(Blob.id.in_(_user_blob_ids(user_id)))))


def storage_usage(session: Session, user_id: int, quota_bytes: int) -> StorageUsage:
    return StorageUsage(storage_used_bytes(session, user_id), quota_bytes)


def held_by_user(session: Session, user_id: int, shas: list[str]) -> set[str]:
    """Which of these contents (by SHA-256) the user's snapshots already hold."""
    held: set[str] = set()
    for start in range(0, len(shas), IN_CHUNK):
        chunk = shas[start : start + IN_CHUNK]
        held.update(session.scalars(
            select(Blob.sha256).where(Blob.sha256.in_(chunk), Blob.id.in_(_user_blob_ids(user_id)))
        ))
    return held


def check_storage_quota(session: Session, user_id: int, sizes_by_sha: dict[str, int], quota_bytes: int) -> None:
    """`TooLarge` with the numbers when storing these contents would take the user past the quota;
    contents the user already holds cost nothing. Reads only."""
    if quota_bytes <= 0 or not sizes_by_sha:
        return
    held = held_by_user(session, user_id, list(sizes_by_sha))
    new_bytes = sum(size for sha, size in sizes_by_sha.items() if sha not in held)
    if new_bytes == 0:
        return
    total = storage_used_bytes(session, user_id) + new_bytes
    if total > quota_bytes:
        raise TooLarge(
            f"This version would bring your storage to {readable_bytes(total, exact=False)} of your "
            f"{readable_bytes(quota_bytes)}; delete projects you no longer need to make room.",
            limit="storage_quota", maximum=quota_bytes, actual=total,
        )


def readable_bytes(size: int, *, exact: bool = True) -> str:
    """Decimal units as a person reads them: "900 bytes", "2 KB", "212.4 MB". With `exact`, a round
    figure drops its ".0" (a limit); without, one decimal always shows (an amount just past a limit)."""
    for unit, scale in (("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            figure = f"{size / scale:,.1f}"
            if exact and figure.endswith(".0"):
                figure = figure[:-2]
            return f"{figure} {unit}"
    return f"{size:,} bytes"
