"""Taking snapshots: immutable file sets of one project, written over content-addressed blobs.

A snapshot taken from a reply builds on the project's previous one: files the reply does not mention are
carried over (`origin="carried"`), files it writes are `origin="reply"`, and a file is removed only when
the reply deletes it explicitly. A version is a tree of directory manifests (`trees.py`): it writes the
manifests on the paths it changed and shares the rest with the versions before it.

Every `take_*`/`restore_*` function validates everything first (paths, limits), then writes the snapshot
and its rows in one transaction, under a lock on the project row (so snapshot numbers and carry-over
never race) and commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, EditsFailed, InvalidRequest, TooLarge
from app.models import Project, Snapshot
from app.models.base import utcnow
from app.models.chat import STATUS_COMPLETE, STATUS_PENDING, STATUS_STREAMING
from app.services import access
from app.services.snapshots.blobs import read_blob_contents, sha256_hex, store_blobs
from app.services.snapshots.edits import apply_reply_blocks, describe_errors
from app.services.snapshots.quota import check_storage_quota
from app.services.snapshots.reading import (
    ORIGIN_CARRIED,
    ORIGIN_REPLY,
    ORIGIN_RESTORED,
    FileEntry,
    latest_snapshot,
    list_snapshot_files,
    snapshot_for_reply,
)
from app.services.snapshots.reply_files import ParsedFiles, check_path, parse_reply_files
from app.services.snapshots.secrets import contains_secret
from app.services.snapshots.trees import link_project_blobs, write_tree
from app.services.transactions import retry_on_lock_conflict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotLimits:
    """Per-snapshot limits, from `SNAPSHOT_MAX_FILES`, `SNAPSHOT_MAX_FILE_BYTES`, `SNAPSHOT_MAX_TOTAL_BYTES`,
    and the per-user storage quota (`app.services.snapshots.quota`)."""

    max_files: int
    max_file_bytes: int
    max_total_bytes: int
    storage_quota_bytes: int = 0  # `STORAGE_QUOTA_BYTES`, over all of the user's snapshots; 0: none

    @classmethod
    def from_settings(cls, settings: Any) -> SnapshotLimits:
        return cls(settings.SNAPSHOT_MAX_FILES, settings.SNAPSHOT_MAX_FILE_BYTES, settings.SNAPSHOT_MAX_TOTAL_BYTES,
                   settings.STORAGE_QUOTA_BYTES)

    def check(self, sizes: dict[str, int]) -> None:
        """Raise `TooLarge` with the numbers when a snapshot of these file sizes is over a limit."""
        if len(sizes) > self.max_files:
            raise TooLarge(
                f"This snapshot would have {len(sizes):,} files; the limit is {self.max_files:,}.",
                limit="files", maximum=self.max_files, actual=len(sizes),
            )
        for path, size in sizes.items():
            if size > self.max_file_bytes:
                raise TooLarge(
                    f"{path} is {size:,} bytes; a file may be at most {self.max_file_bytes:,} bytes.",
                    limit="file_bytes", maximum=self.max_file_bytes, actual=size, path=path,
                )
        total = sum(sizes.values())
        if total > self.max_total_bytes:
            raise TooLarge(
                f"This snapshot would hold {total:,} bytes; the limit is {self.max_total_bytes:,} bytes.",
                limit="total_bytes", maximum=self.max_total_bytes, actual=total,
            )



@dataclass(frozen=True)
class IncomingFile:
    """A file to write into a snapshot, with the origin its row will record."""

    path: str
    content: bytes
    origin: str = ORIGIN_REPLY


@dataclass
class SnapshotResult:
    """A snapshot and what this call did: `created` is False when an identical one already existed."""

    snapshot: Snapshot
    created: bool = True
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    carried: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def from_this_source(self) -> list[str]:
        return sorted(self.added + self.changed + self.unchanged)


def refuse_unsafe_paths(paths: list[str]) -> None:
    """`InvalidRequest` naming each unsafe path and why, or nothing."""
    problems = {path: reason for path in paths if (reason := check_path(path)) is not None}
    if problems:
        listed = "; ".join(f"{path!r} {reason}" for path, reason in problems.items())
        raise InvalidRequest(f"Some paths cannot be stored: {listed}.", fields={"files": listed}, paths=problems)


@dataclass
class _Plan:
    """What the next snapshot will hold: path -> (blob id, or None for content stored now; size; origin;
    sha256), and the new contents by path."""

    files: dict[str, tuple[int | None, int, str, str]]
    new_content: dict[str, bytes]


def _write_snapshot(
    session: Session,
    project: Project,
    *,
    incoming: list[IncomingFile],
    deletions: list[str],
    carry_over: bool,
    limits: SnapshotLimits,
    summary: str,
    source_message_id: int | None = None,
    notes: dict[str, Any] | None = None,
) -> SnapshotResult:
    """Write the next snapshot of the locked `project`; the caller commits (or rolls back on error)."""
    refuse_unsafe_paths([f.path for f in incoming] + deletions)
    base = latest_snapshot(session, project.id)
    base_files = {e.path: e for e in list_snapshot_files(session, base.id)} if base and carry_over else {}
    result = SnapshotResult(snapshot=None)  # type: ignore[arg-type]
    plan = _plan_files(base_files, incoming, deletions, result)
    if not plan.files:
        raise InvalidRequest("A snapshot needs at least one file; this one would be empty.")
    limits.check({path: size for path, (_, size, _, _) in plan.files.items()})
    new_sizes = {sha: size for blob_id, size, _, sha in plan.files.values() if blob_id is None}
    check_storage_quota(session, project.user_id, new_sizes, limits.storage_quota_bytes)

    blob_ids = store_blobs(session, list(plan.new_content.values()))
    inherited_flags = set(base.flagged_paths or []) if base and carry_over else set()
    result.carried = sum(1 for _, _, origin, _ in plan.files.values() if origin == ORIGIN_CARRIED)
    files = {path: blob_id if blob_id is not None else blob_ids[sha]
             for path, (blob_id, _, _, sha) in plan.files.items()}
    # Only what this version wrote: its trees on the changed paths, and the contents new to the project.
    root_tree = write_tree(session, project.id, files)
    link_project_blobs(session, project.id, (files[path] for path in plan.new_content))
    snapshot = Snapshot(
        project_id=project.id,
        number=_next_number(session, project.id),
        summary=summary[:500],
        parent_id=base.id if base else None,
        source_message_id=source_message_id,
        file_count=len(plan.files),
        total_bytes=sum(size for _, size, _, _ in plan.files.values()),
        flagged_paths=_flagged_paths(plan, inherited_flags),
        notes={**(notes or {}), **_change_notes(result)},
        root_tree=root_tree,
        origins=_origins(plan),
    )
    session.add(snapshot)
    session.flush()
    project.updated_at = utcnow()
    result.snapshot = snapshot
    return result


def _plan_files(
    base_files: dict[str, FileEntry], incoming: list[IncomingFile], deletions: list[str], result: SnapshotResult
) -> _Plan:
    """The base's files, then the incoming ones over them, then the deletions; `result` records which
    paths were added, changed, unchanged and deleted."""
    plan = _Plan(
        files={path: (entry.blob_id, entry.size, ORIGIN_CARRIED, entry.sha256) for path, entry in base_files.items()},
        new_content={},
    )
    for item in incoming:
        sha = sha256_hex(item.content)
        previous = base_files.get(item.path)
        if previous is None:
            result.added.append(item.path)
        elif previous.sha256 == sha:
            result.unchanged.append(item.path)
        else:
            result.changed.append(item.path)
        plan.files[item.path] = (None, len(item.content), item.origin, sha)
        plan.new_content[item.path] = item.content
    for path in deletions:
        if path in plan.files and path not in plan.new_content:
            del plan.files[path]
            result.deleted.append(path)
        elif path not in plan.new_content:
            result.warnings.append(f"{path} was to be deleted but is not in the previous snapshot.")
    return plan


def _origins(plan: _Plan) -> dict[str, str]:
    """The version's `origins`: one default ("" key) when every file has the same origin, else the
    origin of each file this version wrote (the others were carried)."""
    kinds = {origin for _, _, origin, _ in plan.files.values()}
    if len(kinds) == 1 and ORIGIN_CARRIED not in kinds:
        return {"": kinds.pop()}
    return {path: origin for path, (_, _, origin, _) in plan.files.items() if origin != ORIGIN_CARRIED}


def _flagged_paths(plan: _Plan, inherited_flags: set[str]) -> list[str]:
    """Paths whose new content looks like it holds a secret, and carried paths the base had flagged."""
    return sorted(
        path
        for path, (_, _, origin, _) in plan.files.items()
        if (path in plan.new_content and contains_secret(path, plan.new_content[path]))
        or (origin == ORIGIN_CARRIED and path in inherited_flags)
    )


def _change_notes(result: SnapshotResult) -> dict[str, Any]:
    return {
        "added": sorted(result.added),
        "changed": sorted(result.changed),
        "unchanged": sorted(result.unchanged),
        "deleted": sorted(result.deleted),
        "carried": result.carried,
        "warnings": result.warnings,
    }


def _next_number(session: Session, project_id: int) -> int:
    return (session.scalar(select(func.max(Snapshot.number)).where(Snapshot.project_id == project_id)) or 0) + 1


SNAPSHOT_WRITE_ATTEMPTS = 4


def _commit(session: Session, write: Any) -> SnapshotResult:
    """Run `write` and commit, retrying from the start when InnoDB picked it as a deadlock victim
    (two snapshots storing the same new blob can deadlock on the unique index; all was rolled back).
    Any failure leaves the session rolled back."""

    def write_snapshot() -> SnapshotResult:
        written = write()
        session.commit()
        return written

    try:
        result = retry_on_lock_conflict(session, write_snapshot, attempts=SNAPSHOT_WRITE_ATTEMPTS, label="snapshot write")
    except Exception:
        session.rollback()
        raise
    log.info(
        "snapshot %s (#%s) of project %s: %d files, %d from this source, %d carried",
        result.snapshot.id, result.snapshot.number, result.snapshot.project_id,
        result.snapshot.file_count, len(result.from_this_source), result.carried,
    )
    return result


def take_snapshot_from_message(
    session: Session, *, user_id: int, project_id: int, message_id: int, limits: SnapshotLimits
) -> SnapshotResult:
    """Snapshot the files of an assistant reply on top of the project's previous snapshot. Commits.

    Files the reply does not mention are carried over; files it marks deleted are removed. Idempotent per
    reply (a double click, the automatic version of a finished reply): when a snapshot of the project was
    already taken from this reply, that one is returned with `created=False`. A reply still being written is a `Conflict`; one with no files, or
    with unsafe paths, is an `InvalidRequest` naming them; over a limit, `TooLarge`.
    """
    access.owned_project(session, user_id=user_id, project_id=project_id)  # someone else's: 404 before all
    message = access.owned_reply(session, user_id=user_id, message_id=message_id)
    if message.project_id is not None and message.project_id != project_id:
        raise InvalidRequest("This reply belongs to another project.", fields={"project_id": "not this reply's"})
    if message.status in (STATUS_PENDING, STATUS_STREAMING):
        raise Conflict("This reply is still being written; take the snapshot when it has finished.")
    parsed = parse_reply_files(message.content or "", reply_finished=message.status == STATUS_COMPLETE)
    if parsed.refused:
        listed = "; ".join(item.sentence() for item in parsed.refused)
        raise InvalidRequest(
            f"This reply has paths that cannot be stored: {listed}",
            fields={"message_id": listed},
            paths={item.path: item.reason for item in parsed.refused},
        )
    if not parsed.has_files:
        raise InvalidRequest(
            "This reply has no files to snapshot: files are code blocks that name a path, "
            "like ```python path=app/main.py.",
            fields={"message_id": "no files"},
        )

    def write() -> SnapshotResult:
        project = access.owned_project(session, user_id=user_id, project_id=project_id, lock=True)
        existing = snapshot_for_reply(session, message.id)
        if existing is not None and existing.project_id == project.id:
            return _already_taken(existing)
        writes, deletions = _reply_changes(session, latest_snapshot(session, project.id), parsed)
        written = list(writes)
        names = ", ".join(written[:3]) + (f" and {len(written) - 3} more" if len(written) > 3 else "")
        summary = f"From reply #{message.id}: {names}" if written else f"From reply #{message.id}: deletions"
        result = _write_snapshot(
            session,
            project,
            incoming=[IncomingFile(path, text.encode("utf-8"), ORIGIN_REPLY) for path, text in writes.items()],
            deletions=deletions,
            carry_over=True,
            limits=limits,
            summary=summary,
            source_message_id=message.id,
            notes={"parser_warnings": parsed.warnings},
        )
        result.warnings = parsed.warnings + result.warnings
        return result

    result = _commit(session, write)
    return result


def _reply_changes(session: Session, base: Snapshot | None, parsed: ParsedFiles) -> tuple[dict[str, str], list[str]]:
    """(path -> new text, deleted paths) of a reply over `base`. A reply without edit blocks is its
    whole files (last block per path) and deletions; one with edit blocks is applied block by block on
    top of `base` (`app.services.snapshots.edits`), all or nothing: any failing section raises
    `EditsFailed` with every failure, and nothing is written."""
    if not parsed.has_edits:
        return {f.path: f.content for f in parsed.written}, parsed.deleted_paths
    touched = {block.path for block in parsed.blocks}
    entries = [e for e in list_snapshot_files(session, base.id) if e.path in touched] if base else []
    contents = read_blob_contents(session, [e.blob_id for e in entries])
    current = {e.path: contents[e.blob_id].decode("utf-8", errors="replace") for e in entries}
    applied = apply_reply_blocks(current, parsed.blocks)
    if not applied.ok:
        errors = [error.as_dict() for error in applied.errors]
        count = len(errors)
        raise EditsFailed(
            f"{count} edit{'s' if count != 1 else ''} in this reply could not be applied, so none were and no "
            f"version was made: {describe_errors(applied.errors)}",
            errors=errors,
        )
    return applied.writes, applied.deletions


def _already_taken(snapshot: Snapshot) -> SnapshotResult:
    """The result of a take that had already happened, as recorded in the snapshot's notes."""
    return SnapshotResult(
        snapshot=snapshot,
        created=False,
        **{key: list(snapshot.notes.get(key, [])) for key in ("added", "changed", "unchanged", "deleted")},
        carried=int(snapshot.notes.get("carried", 0)),
        warnings=list(snapshot.notes.get("warnings", [])),
    )


def take_snapshot_from_files(
    session: Session,
    *,
    user_id: int,
    project_id: int,
    files: list[IncomingFile],
    limits: SnapshotLimits,
    summary: str = "",
    deletions: list[str] | None = None,
    carry_over: bool = False,
) -> SnapshotResult:
    """Snapshot an uploaded file list. Commits.

    By default the list is the whole snapshot (an upload replaces the project's files); with
    `carry_over=True` it builds on the previous snapshot like a reply, and `deletions` removes paths.
    The same path twice is refused; so are unsafe paths and anything over a limit.
    """
    access.owned_project(session, user_id=user_id, project_id=project_id)  # someone else's: 404 before all
    seen: set[str] = set()
    duplicates = sorted({f.path for f in files if f.path in seen or seen.add(f.path)})
    if duplicates:
        raise InvalidRequest(
            f"Each path may appear once; repeated: {', '.join(duplicates)}.", fields={"files": "repeated paths"}
        )
    if not files and not (carry_over and deletions):
        raise InvalidRequest("Send at least one file.", fields={"files": "empty"})

    def write() -> SnapshotResult:
        project = access.owned_project(session, user_id=user_id, project_id=project_id, lock=True)
        return _write_snapshot(
            session,
            project,
            incoming=files,
            deletions=deletions or [],
            carry_over=carry_over,
            limits=limits,
            summary=summary or f"Uploaded {len(files)} file{'s' if len(files) != 1 else ''}",
        )

    return _commit(session, write)


def restore_snapshot(
    session: Session, *, user_id: int, snapshot_id: int, limits: SnapshotLimits, project_id: int | None = None
) -> SnapshotResult:
    """A new latest snapshot of the project holding exactly the files of `snapshot_id`. Commits.

    No content is copied and no tree is written: the new version points at the old one's root tree. With
    `project_id`, a snapshot of another project is `NotFound` too (a page's address names both).
    """
    old = access.owned_snapshot(session, user_id=user_id, snapshot_id=snapshot_id, project_id=project_id)

    def write() -> SnapshotResult:
        project = access.owned_project(session, user_id=user_id, project_id=old.project_id, lock=True)
        entries = list_snapshot_files(session, old.id)
        limits.check({e.path: e.size for e in entries})
        base = latest_snapshot(session, project.id)
        # The same root tree: a restore writes one row, and its blobs are the project's already.
        snapshot = Snapshot(
            project_id=project.id,
            number=_next_number(session, project.id),
            summary=f"Restored snapshot #{old.number}",
            parent_id=base.id if base else None,
            file_count=len(entries),
            total_bytes=sum(e.size for e in entries),
            flagged_paths=list(old.flagged_paths or []),
            notes={"restored_from": old.id, "restored_from_number": old.number},
            root_tree=old.root_tree,
            origins={"": ORIGIN_RESTORED},
        )
        session.add(snapshot)
        session.flush()
        project.updated_at = utcnow()
        return SnapshotResult(snapshot=snapshot, unchanged=[e.path for e in entries])

    return _commit(session, write)

