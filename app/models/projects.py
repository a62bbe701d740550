"""Projects and their snapshots: immutable file sets over content-addressed blobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigIntId, LongBlob, ids_never_reused, table_args, utcnow

PROJECT_ACTIVE = "active"
PROJECT_ARCHIVED = "archived"


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = ids_never_reused(table_args(Index("ix_projects_user_id_updated_at", "user_id", "updated_at")))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    # The workspace it belongs to; None only for a row written by code older than workspaces, which is
    # read as its creator's personal workspace (`policy.project_workspace`).
    workspace_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=PROJECT_ACTIVE)
    # The linked GitHub repository ("owner/name"), its branch and Sorya's last pushed commit there.
    repo_full_name: Mapped[str | None] = mapped_column(String(255))
    repo_html_url: Mapped[str | None] = mapped_column(String(500))
    repo_branch: Mapped[str | None] = mapped_column(String(255))
    repo_head_sha: Mapped[str | None] = mapped_column(String(40))
    # "New conversation": the prompt carries only the project's messages after this one (None: all).
    context_after_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # Whether a preview of this project's versions may load scripts, styles and fonts from https: CDNs.
    preview_allow_cdn: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    # The sync base: the version whose files equal `repo_head_sha`'s tree (set by an import, a pull and a
    # push to `repo_branch`). A pull merges from it; a push diffs against it.
    sync_snapshot_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Blob(Base):
    """One row per distinct file content, shared by every snapshot that holds it."""

    __tablename__ = "blobs"
    __table_args__ = table_args()

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # Git's blob id of the same bytes, so a push compares with the remote tree without hashing again.
    git_sha: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(BigInteger)
    is_binary: Mapped[bool] = mapped_column(Boolean, default=False)
    content: Mapped[bytes] = mapped_column(LongBlob)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Snapshot(Base):
    __tablename__ = "snapshots"
    __table_args__ = ids_never_reused(table_args(
        Index("uq_snapshots_project_id_number", "project_id", "number", unique=True),
    ))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    project_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("projects.id", ondelete="CASCADE"))
    # 1, 2, 3… within the project: what a person calls "snapshot #3".
    number: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(String(500), default="")
    parent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("snapshots.id", ondelete="SET NULL")
    )
    source_message_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("chat_messages.id", ondelete="SET NULL"), index=True
    )
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # Paths whose content looks like a secret; publishing asks for confirmation when non-empty.
    flagged_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The hash of its root directory manifest (`SnapshotTree.hash` in this project); None: no files.
    root_tree: Mapped[str | None] = mapped_column(String(64))
    # Where its files came from: path -> origin for the files this version wrote, "" -> the origin of
    # every file not listed (absent: "carried"). O(written files), never O(all files).
    origins: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SnapshotTree(Base):
    """One directory of a version: a manifest of names -> blob id (a file) or subtree hash (a folder, its
    name ending in "/"), content-addressed per project and shared by every version where it is the same,
    as git trees are. A version that changes 3 files writes the trees on those 3 paths only."""

    __tablename__ = "snapshot_trees"
    __table_args__ = table_args(Index("uq_snapshot_trees_project_id_hash", "project_id", "hash", unique=True))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    project_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("projects.id", ondelete="CASCADE"))
    hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of `manifest`
    manifest: Mapped[bytes] = mapped_column(LongBlob)  # compact JSON, sorted (`services/snapshots/trees.py`)


class ProjectBlob(Base):
    """A content some version of the project holds: what keeps a blob from garbage collection, and what
    the storage quota sums (trees name blobs inside their manifests, which SQL cannot join on)."""

    __tablename__ = "project_blobs"
    __table_args__ = table_args(Index("ix_project_blobs_blob_id", "blob_id"))

    project_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    blob_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("blobs.id"), primary_key=True)
