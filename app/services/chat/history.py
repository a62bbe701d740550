"""A conversation: whose it is (a project's, or the general chat's), its pages of history, and search."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.models import ChatMessage, Project
from app.services import access, credits

HISTORY_MAX_LIMIT = 100
SEARCH_LIMIT = 50

# What a message may not contain (kept out of stored messages and of search needles).
CONTROL_CHARS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ReplyView:
    """A reply as a page or the API shows it: the message, its project, and its owner's balance."""

    message: ChatMessage
    project: Project | None
    balance: int


def reply_view(session: Session, *, user_id: int, message_id: int) -> ReplyView:
    """The user's reply as committed now (read afresh, never from the session's identity map), with its
    project and the user's balance; `NotFound` for someone else's or a missing reply. Reads only."""
    message = access.owned_reply(session, user_id=user_id, message_id=message_id, fresh=True)
    project = session.get(Project, message.project_id) if message.project_id else None
    balance = credits.read_balance(session, user_id)
    return ReplyView(message, project, balance.balance if balance else 0)


def messages_by_id(session: Session, *, user_id: int, message_ids: list[int]) -> list[ChatMessage]:
    """The user's messages among `message_ids`, oldest first (someone else's are left out). Reads only."""
    return list(session.execute(
        select(ChatMessage).where(ChatMessage.id.in_(message_ids), ChatMessage.user_id == user_id)
        .order_by(ChatMessage.id)
    ).scalars())


def conversation_filter(user_id: int, project_id: int | None) -> Any:
    scope = ChatMessage.project_id.is_(None) if project_id is None else ChatMessage.project_id == project_id
    return and_(ChatMessage.user_id == user_id, scope)


@dataclass(frozen=True)
class HistoryPage:
    messages: list[ChatMessage]  # oldest first
    next_before: int | None  # pass as `before` for the page of older messages


def list_history(
    session: Session, *, user_id: int, project_id: int | None, limit: int = HISTORY_MAX_LIMIT,
    before: int | None = None,
) -> HistoryPage:
    """One page of a conversation (a project's, or the general chat's when `project_id` is None), by
    keyset on the message id: the `limit` messages just before `before` (the latest when None)."""
    if project_id is not None:
        access.owned_project(session, user_id=user_id, project_id=project_id)
    limit = max(1, min(limit, HISTORY_MAX_LIMIT))
    query = select(ChatMessage).where(conversation_filter(user_id, project_id))
    if before is not None:
        query = query.where(ChatMessage.id < before)
    rows = session.execute(query.order_by(ChatMessage.id.desc()).limit(limit + 1)).scalars().all()
    has_more = len(rows) > limit
    page = list(reversed(rows[:limit]))
    return HistoryPage(page, page[0].id if has_more and page else None)


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def search_messages(
    session: Session, *, user_id: int, project_id: int | None, query: str, limit: int = SEARCH_LIMIT
) -> list[ChatMessage]:
    """Messages of one conversation containing `query` (case-insensitive), newest first."""
    if project_id is not None:
        access.owned_project(session, user_id=user_id, project_id=project_id)
    needle = CONTROL_CHARS_RE.sub("", query).strip()
    if not needle:
        return []
    return list(
        session.execute(
            select(ChatMessage)
            .where(conversation_filter(user_id, project_id),
                   func.lower(ChatMessage.content).like(_like_pattern(needle[:200]), escape="\\"))
            .order_by(ChatMessage.id.desc())
            .limit(limit)
        ).scalars()
    )
