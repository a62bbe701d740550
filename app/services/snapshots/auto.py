"""Every finished reply of a project that writes files becomes the project's next version by itself.

`version_reply` is called right after the reply's end is stored and charged (chat/generation.py), and by
the sweep for the replies whose process stopped in between (`version_missed_replies`). It is idempotent
per reply: the snapshot is taken under the project's lock, and a reply that already made one gets it
back (`store.take_snapshot_from_message`). The money never depends on it: a version that cannot be made
(quota full, a file too large, an unsafe path, edits that do not apply) is recorded on the reply
(`chat_messages.meta`), shown under it, and never fails or un-charges the reply.

A stopped or failed reply is never versioned by itself: the person may *Keep these files*
(`keep_reply_files`, its complete files only). A reply of the general chat (no project) may be saved to a
project, existing or new (`save_reply_to_project`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, DomainError, EditsFailed, InvalidRequest
from app.models import ChatMessage
from app.models.base import utcnow
from app.models.chat import ROLE_ASSISTANT, STATUS_COMPLETE, STATUS_FAILED, STATUS_STOPPED
from app.services import access
from app.services.snapshots.reading import snapshot_for_reply
from app.services.snapshots.reply_files import parse_reply_files
from app.services.snapshots.store import SnapshotLimits, SnapshotResult, take_snapshot_from_message

log = logging.getLogger(__name__)

MESSAGES = ChatMessage.__table__
# The sweep versions the finished replies it finds unversioned this long after their end (their own
# process had the first go) and up to this old (older ones were finished before automatic versions).
MISSED_AFTER_S = 60
MISSED_WITHIN = timedelta(days=2)
MISSED_BATCH = 200


@dataclass(frozen=True)
class ReplyVersion:
    """What versioning a reply did: the snapshot it made (or had made), or why none was made."""

    snapshot_id: int | None = None
    number: int | None = None
    changed: list[str] = field(default_factory=list)
    edit_errors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def meta(self) -> dict[str, Any]:
        """What `chat_messages.meta` records of it."""
        meta: dict[str, Any] = {"snapshot_id": self.snapshot_id}
        if self.error:
            meta["error"] = self.error
        if self.edit_errors:
            meta["edit_errors"] = self.edit_errors
        return meta


NO_VERSION = ReplyVersion()
# What a finished reply that writes no file records at its end (in the same UPDATE): nothing to version.
NO_FILES_META: dict[str, Any] = {"snapshot_id": None}


def reply_writes_files(text: str) -> bool:
    """Whether a finished reply's text writes, deletes or names (even unsafely) any file."""
    parsed = parse_reply_files(text or "", reply_finished=True)
    return parsed.has_files or bool(parsed.refused)


def _from_result(result: SnapshotResult) -> ReplyVersion:
    changed = sorted(result.added + result.changed + result.deleted)
    return ReplyVersion(snapshot_id=result.snapshot.id, number=result.snapshot.number, changed=changed)


def _record(session: Session, message_id: int, version: ReplyVersion) -> None:
    session.execute(update(MESSAGES).where(MESSAGES.c.id == message_id).values(meta=version.meta()))
    session.commit()


def version_reply(session: Session, *, user_id: int, message_id: int, limits: SnapshotLimits) -> ReplyVersion:
    """Make the finished reply's files the project's next version, once. Commits; never raises a
    `DomainError` (a version that cannot be made is returned, and recorded, with its reason).

    A reply outside a project, not complete, or with no files makes no version and no error.
    """
    message = access.owned_reply(session, user_id=user_id, message_id=message_id)
    if message.project_id is None or message.status != STATUS_COMPLETE:
        session.rollback()
        return NO_VERSION
    existing = snapshot_for_reply(session, message.id)
    if existing is not None:
        notes = existing.notes or {}
        changed = sorted(notes.get("added", []) + notes.get("changed", []) + notes.get("deleted", []))
        session.rollback()
        return ReplyVersion(snapshot_id=existing.id, number=existing.number, changed=changed)
    if not reply_writes_files(message.content):
        version = NO_VERSION
    else:
        version = _take(session, user_id=user_id, project_id=message.project_id, message_id=message.id,
                        limits=limits)
    try:
        _record(session, message_id, version)
    except Exception:  # noqa: BLE001 - the version stands; the note is only a convenience for the sweep
        session.rollback()
        log.exception("snapshots: could not record the version of reply %s", message_id)
    return version


def _take(session: Session, *, user_id: int, project_id: int, message_id: int, limits: SnapshotLimits) -> ReplyVersion:
    try:
        result = take_snapshot_from_message(session, user_id=user_id, project_id=project_id,
                                            message_id=message_id, limits=limits)
    except EditsFailed as error:
        session.rollback()
        return ReplyVersion(edit_errors=list(error.errors), error=error.message)
    except DomainError as error:
        session.rollback()
        log.info("snapshots: reply %s made no version: %s", message_id, error.message)
        return ReplyVersion(error=error.message)
    return _from_result(result)


def recorded_version(message: ChatMessage) -> ReplyVersion | None:
    """What versioning recorded on the reply, or None when it has not run (yet)."""
    meta = message.meta or {}
    if "snapshot_id" not in meta:
        return None
    return ReplyVersion(snapshot_id=meta.get("snapshot_id"), edit_errors=list(meta.get("edit_errors") or []),
                        error=meta.get("error"))


def version_missed_replies(session: Session, *, limits: SnapshotLimits, now: Any = None) -> int:
    """Version the complete replies of projects whose process stopped between their end and their version
    (the sweep). Idempotent: each is versioned under its project's lock. Returns how many were versioned."""
    now = now or utcnow()
    ids = session.execute(
        select(ChatMessage.id, ChatMessage.user_id).where(
            ChatMessage.role == ROLE_ASSISTANT,
            ChatMessage.status == STATUS_COMPLETE,
            ChatMessage.project_id.is_not(None),
            ChatMessage.meta.is_(None),
            ChatMessage.finished_at > now - MISSED_WITHIN,
            ChatMessage.finished_at <= now - timedelta(seconds=MISSED_AFTER_S),
        ).order_by(ChatMessage.id).limit(MISSED_BATCH)
    ).all()
    session.rollback()
    versioned = 0
    for message_id, user_id in ids:
        try:
            version = version_reply(session, user_id=user_id, message_id=message_id, limits=limits)
        except DomainError:  # the reply or its project was deleted meanwhile
            session.rollback()
            continue
        versioned += version.snapshot_id is not None
    return versioned


def keep_reply_files(
    session: Session, *, user_id: int, message_id: int, limits: SnapshotLimits, project_id: int | None = None
) -> SnapshotResult:
    """A version of the complete files of a stopped or failed reply (its cut-off file is never kept). Commits.

    A reply of the general chat names its `project_id`. `Conflict` for a reply still being written or one
    that finished (those are versioned by themselves).
    """
    message = access.owned_reply(session, user_id=user_id, message_id=message_id)
    if message.status not in (STATUS_STOPPED, STATUS_FAILED):
        raise Conflict("Only a stopped or failed reply keeps its files this way; a finished reply is a version "
                       "already.")
    target = message.project_id if message.project_id is not None else project_id
    if target is None:
        raise InvalidRequest("Choose the project these files go to.", fields={"project_id": "required"})
    return take_snapshot_from_message(session, user_id=user_id, project_id=target, message_id=message.id,
                                      limits=limits)


def save_reply_to_project(
    session: Session, *, user_id: int, message_id: int, project_id: int | None, new_project_name: str | None,
    limits: SnapshotLimits,
) -> SnapshotResult:
    """Save a general-chat reply's files as a version of a project: an existing one (`project_id`) or a
    new one named `new_project_name`. Commits."""
    from app.services import projects as project_service  # projects imports snapshots

    message = access.owned_reply(session, user_id=user_id, message_id=message_id)
    if message.project_id is not None:
        raise InvalidRequest("This reply already belongs to a project; its files are versioned there.")
    parsed = parse_reply_files(message.content or "", reply_finished=message.status == STATUS_COMPLETE)
    if not parsed.has_files:
        raise InvalidRequest("This reply has no files to save.", fields={"message_id": "no files"})
    if project_id is not None:
        return take_snapshot_from_message(session, user_id=user_id, project_id=project_id, message_id=message.id,
                                          limits=limits)
    name = (new_project_name or "").strip()
    if not name:
        raise InvalidRequest("Choose a project, or name a new one.", fields={"project_id": "required"})
    project_id = project_service.create_project(session, user_id=user_id, name=name).id
    try:
        return take_snapshot_from_message(session, user_id=user_id, project_id=project_id, message_id=message.id,
                                          limits=limits)
    except Exception:
        # The project was made for these files alone: refused, they would leave an empty project behind.
        session.rollback()
        project_service.delete_project(session, user_id=user_id, project_id=project_id)
        raise
