"""Replies whose edits failed (what they store, the *Fix the edits* follow-up), and *New conversation*.

When a reply's edit blocks cannot all be applied (`app.errors.EditsFailed`, raised by the snapshot store
before it writes anything), its automatic version (`app.services.snapshots.auto`) stores the failures on
the reply (`ChatMessage.meta["edit_errors"]`), so its page shows which block and section failed and why. *Fix the edits* sends an ordinary, charged
message in the same project: it names each failure and the files involved, and the prompt carries those
files' current content (every file a message names by path is sent, within the files budget), so the
model can quote SEARCH texts that are really there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidRequest
from app.models import ChatMessage
from app.services import access
from app.services.chat.estimate import SendEstimate, send_estimate
from app.services.chat.settings import ChatSettings
from app.services.snapshots.edits import REASON_WORDS

__all__ = ["edit_errors_of", "fix_edits_estimate", "fix_edits_request", "start_new_conversation"]

MAX_LISTED_ERRORS = 20


def edit_errors_of(message: ChatMessage) -> list[dict[str, Any]]:
    return list((message.meta or {}).get("edit_errors") or [])


def fix_edits_request(session: Session, *, user_id: int, message_id: int) -> tuple[str, int | None]:
    """(the follow-up message's text, its project id) for a reply whose edits failed. Reads only.

    `NotFound` for someone else's reply; `InvalidRequest` when the reply has no failed edits."""
    message = access.owned_reply(session, user_id=user_id, message_id=message_id)
    errors = edit_errors_of(message)
    if not errors:
        raise InvalidRequest("This reply has no failed edits to fix.", fields={"message_id": "no failed edits"})
    lines = [f"Your edits in reply #{message.id} could not be applied, so none were. What failed:"]
    for error in errors[:MAX_LISTED_ERRORS]:
        words = REASON_WORDS.get(error.get("reason", ""), error.get("reason", ""))
        lines.append(f"- block {error.get('block')}, section {error.get('section')} of {error.get('path')}: "
                     f"{words}. {error.get('detail', '')}".rstrip())
    if len(errors) > MAX_LISTED_ERRORS:
        lines.append(f"- and {len(errors) - MAX_LISTED_ERRORS} more.")
    paths = list(dict.fromkeys(str(error.get("path")) for error in errors))
    lines.append(
        f"The current content of {', '.join(paths)} is in this prompt. Send the whole change again as edit "
        "blocks whose SEARCH texts are copied exactly from that content (or as whole files for files that "
        "do not exist yet)."
    )
    return "\n".join(lines), message.project_id


def start_new_conversation(session: Session, *, user_id: int, project_id: int) -> int | None:
    """*New conversation* in a project: the prompt carries only messages sent from now on (earlier ones
    stay visible and searchable). Returns the id of the last message before the divider. Commits."""
    project = access.owned_project(session, user_id=user_id, project_id=project_id, lock=True)
    last_id = session.scalar(
        select(func.max(ChatMessage.id)).where(ChatMessage.user_id == user_id, ChatMessage.project_id == project_id)
    )
    if last_id is not None:
        project.context_after_message_id = last_id
    session.commit()
    return project.context_after_message_id


def fix_edits_estimate(session: Session, *, user_id: int, message_id: int, settings: ChatSettings) -> SendEstimate:
    """The most *Fix the edits* can cost, shown before it is sent: the send estimate of its very message
    (`estimate.send_estimate`, the send's own hold rule), with the failed reply's model when still offered."""
    text, project_id = fix_edits_request(session, user_id=user_id, message_id=message_id)
    model = access.owned_reply(session, user_id=user_id, message_id=message_id).model
    return send_estimate(session, user_id=user_id, project_id=project_id,
                         model=model if model in settings.models else None, message_text=text, settings=settings)
