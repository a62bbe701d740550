"""Chat messages: a person's prompts and the model's replies, with what each cost."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigIntId, LongText, ids_never_reused, table_args, utcnow

ROLE_USER = "user"
ROLE_ASSISTANT = "assistant"

STATUS_PENDING = "pending"
STATUS_STREAMING = "streaming"
STATUS_COMPLETE = "complete"
STATUS_STOPPED = "stopped"
STATUS_FAILED = "failed"
FINAL_STATUSES = (STATUS_COMPLETE, STATUS_STOPPED, STATUS_FAILED)


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = ids_never_reused(table_args(
        # History pages: a user's messages in one project (or none), newest first by id.
        Index("ix_chat_messages_user_id_project_id_id", "user_id", "project_id", "id"),
        Index("ix_chat_messages_status_heartbeat_at", "status", "heartbeat_at"),
    ))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("projects.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(LongText, default="")
    model: Mapped[str | None] = mapped_column(String(100))
    # For an assistant reply: the user message it answers.
    reply_to_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("chat_messages.id", ondelete="SET NULL")
    )
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default=STATUS_COMPLETE)
    # "provider" when the usage came from the provider, "estimate" when Sorya counted the text itself.
    usage_source: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    hold_id: Mapped[int | None] = mapped_column(BigInteger)
    # Touched by the generating process; a reply whose heartbeat stops is swept to failed.
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What made up the reply's prompt at send time, for its footer: estimated tokens by part
    # ("instructions", "files", "history", "message"), "files_sent", "history_kept", "history_dropped".
    prompt_parts: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    finished_at: Mapped[datetime | None]
    # A finished reply of a project, once versioned (app/services/snapshots/auto.py): {"snapshot_id"} or
    # {"snapshot_id": None, "error"?, "edit_errors"?}. NULL until then (the sweep versions those it missed).
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True, default=None)
