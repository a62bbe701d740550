"""Pushes of snapshots to GitHub."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigIntId, ids_never_reused, table_args, utcnow

PUSH_QUEUED = "queued"
PUSH_RUNNING = "running"
PUSH_SUCCEEDED = "succeeded"
PUSH_UP_TO_DATE = "up_to_date"
PUSH_FAILED = "failed"


class Push(Base):
    __tablename__ = "pushes"
    __table_args__ = ids_never_reused(table_args(Index("ix_pushes_project_id_id", "project_id", "id")))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    project_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("projects.id", ondelete="CASCADE"))
    snapshot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("snapshots.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    repo_full_name: Mapped[str] = mapped_column(String(255))
    branch: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=PUSH_QUEUED)
    # Set to the project id while a push runs and cleared after: the unique index lets one run at a time.
    running_lock: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    commit_sha: Mapped[str | None] = mapped_column(String(40))
    html_url: Mapped[str | None] = mapped_column(String(500))
    files_changed: Mapped[int] = mapped_column(Integer, default=0)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    requests_made: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # What was asked beyond the default: {"named_branch": bool, "pull_request": {"title", "body"} | None}.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The pull request this push opened: {"number", "url", "state", "etag", "checked_at"} (or {"error"}).
    pull_request: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ProjectSync(Base):
    """What Sorya knows about a linked project's branch on GitHub beyond its sync base
    (`projects.repo_head_sha` + `projects.sync_snapshot_id`): the last conditional check (its ETag and
    result, so a check costs GitHub's rate limit only when the branch moved, and runs at most once a
    minute), the conflicts a pull left, and the pull lock (one pull at a time, never during a push)."""

    __tablename__ = "project_syncs"
    __table_args__ = table_args()

    project_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("projects.id", ondelete="CASCADE"),
                                            primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(200))
    checked_at: Mapped[datetime | None]
    remote_head: Mapped[str | None] = mapped_column(String(40))
    ahead_by: Mapped[int] = mapped_column(Integer, default=0)
    rewritten: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"path", "ours_snapshot_id", "theirs_sha"}] of the last pull's conflicts (resolved ones drop out).
    conflicts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    pull_started_at: Mapped[datetime | None]
