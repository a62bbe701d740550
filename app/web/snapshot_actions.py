"""The view model of the *Take snapshot* control under assistant replies (partials/_snapshot_action.html).

A route that shows replies builds one `SnapshotActions` for its page (one query at most, however many
replies it shows, and none when no reply holds files) and passes it to `render_template` as `snapshot_actions`; the partial asks it about
each reply with `snapshot_actions.for_message(message)`, which only parses the reply's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from flask import g
from sqlalchemy.orm import Session

from app.models import ChatMessage, Project, Snapshot
from app.models.chat import ROLE_ASSISTANT, STATUS_COMPLETE, STATUS_PENDING, STATUS_STREAMING
from app.services import projects as project_service
from app.services import snapshots as snapshot_service


@dataclass
class SnapshotAction:
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


class SnapshotActions:
    """The controls of one page: snapshots already taken from its replies (by reply id), and the projects
    a reply outside any project can go to. Each is read on first use (one query), so a page whose
    replies hold no files sends none."""

    def __init__(self, session: Session, *, user_id: int, project: Project | None) -> None:
        """For a page of `project`'s replies, or of the general chat's (`project` None: replies outside
        any project, which offer the user's active projects)."""
        self.session, self.user_id, self.project = session, user_id, project

    @cached_property
    def existing(self) -> dict[int, Snapshot]:
        if self.project is None:
            return {}
        return project_service.snapshots_by_source_message(self.session, project_ids={self.project.id})

    @cached_property
    def target_projects(self) -> list[Project]:
        if self.project is not None:
            return []
        return project_service.active_projects(self.session, user_id=self.user_id)

    def for_message(self, message: ChatMessage) -> SnapshotAction:
        finished = message.status not in (STATUS_PENDING, STATUS_STREAMING)
        # A stopped or failed reply's unclosed last block was cut off: it is not one of its files.
        parsed = snapshot_service.parse_reply_files(message.content or "",
                                                    reply_finished=message.status == STATUS_COMPLETE)
        action = SnapshotAction(
            files=list(dict.fromkeys([f.path for f in parsed.written] + parsed.edited_paths)),
            deleted=parsed.deleted_paths,
            warnings=parsed.warnings,
            refused=[item.sentence() for item in parsed.refused],
            in_progress=not finished,
            existing=None,
            projects=[],
        )
        if not action.shown or message.role != ROLE_ASSISTANT:
            action.files, action.deleted, action.refused = [], [], []
            return action
        action.existing = self.existing.get(message.id)
        action.projects = self.target_projects if message.project_id is None else []
        return action

    def chip_for(self, message: ChatMessage) -> dict[str, Any] | None:
        """The version chip's context for one reply (`reply_version_chip`)."""
        return reply_version_chip(self, message)


def page_snapshot_actions(session: Session, *, user_id: int, project: Project | None) -> SnapshotActions:
    """One `SnapshotActions` per request and project, for a page whose route passes no `snapshot_actions`
    (the chat pages, whose replies are rendered by app/web/chat.py)."""
    cache: dict[int | None, SnapshotActions] = g.setdefault("_snapshot_actions", {})
    key = project.id if project is not None else None
    if key not in cache:
        cache[key] = SnapshotActions(session, user_id=user_id, project=project)
    return cache[key]


# -- the version chip under each reply (partials/_reply_version_chip.html) -------------------------------

CHIP_VERSION = "version"  # the reply made a version: "v7 · 2 changed · Preview · Diff" (+ Push when linked)
CHIP_PENDING = "pending"  # a finished reply whose version is being made (or was missed: a plain form)
CHIP_FAILED = "failed"  # no version could be made: the reason, and a form to try again
CHIP_KEEP = "keep"  # a stopped or failed reply with complete files: *Keep these files*
CHIP_SAVE = "save"  # a reply of the general chat with files: *Save to a project…*


def reply_version_chip(actions: SnapshotActions, message: ChatMessage) -> dict[str, Any] | None:
    """What the chip under one reply shows, as a plain dict (None: no chip: not a reply, still being
    written, or no files). Keys: `state` (one of the CHIP_ values), `message_id`, `project_id`, `files`
    (what the reply writes), and by state: `snapshot` (id, number, parent_id), `changed` (count),
    `linked` (the project pushes to GitHub), `error`, `edit_errors`, `projects` (the general chat's
    targets: id, name)."""
    if message.role != ROLE_ASSISTANT or message.status in (STATUS_PENDING, STATUS_STREAMING):
        return None
    state = actions.for_message(message)
    if not state.shown:
        return None
    chip: dict[str, Any] = {
        "message_id": message.id, "project_id": message.project_id, "files": state.files,
        "deleted": state.deleted, "refused": state.refused,
    }
    snapshot = state.existing
    if snapshot is not None:
        notes = snapshot.notes or {}
        changed = len(notes.get("added", [])) + len(notes.get("changed", [])) + len(notes.get("deleted", []))
        project = actions.project
        chip.update(state=CHIP_VERSION, changed=changed,
                    snapshot={"id": snapshot.id, "number": snapshot.number, "parent_id": snapshot.parent_id},
                    linked=bool(project is not None and project.repo_full_name))
        return chip
    if message.project_id is None:
        chip.update(state=CHIP_SAVE, projects=[{"id": p.id, "name": p.name} for p in state.projects])
        return chip
    if message.status != STATUS_COMPLETE:
        chip.update(state=CHIP_KEEP if state.files else CHIP_FAILED,
                    error=None if state.files else "The reply stopped before any file was complete.")
        return chip
    recorded = (message.meta or {})
    if recorded.get("error") or recorded.get("edit_errors"):
        chip.update(state=CHIP_FAILED, error=recorded.get("error"), edit_errors=recorded.get("edit_errors") or [])
        return chip
    chip.update(state=CHIP_PENDING)
    return chip
