"""Regenerate the latest reply, or retry a failed or stopped one: the person's message that led to it is
sent again as a NEW reply (the old one is kept), charged as any send under the same hold rules
(`sending`'s own helpers: the same prompt rules, room, hold and commit).

Only the latest reply of a conversation can be regenerated: its prompt is the conversation up to that
message, and a newer exchange would be left out of it. Checked again under the balance lock the send
takes, so a double click makes one new reply and the second click is told why not.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, Unavailable
from app.models import ChatMessage
from app.models.base import utcnow
from app.models.chat import FINAL_STATUSES, ROLE_USER
from app.runtime import lifecycle
from app.runtime.streams import ReplyStreams
from app.services import access
from app.services.chat.history import conversation_filter
from app.services.chat.sending import (
    SentMessage,
    _add_reply,
    _commit_send,
    _prompt_for,
    choose_model,
    lock_payer_room,
    place_reply_hold,
    prompt_parts,
)
from app.services.chat.settings import ChatSettings

NOT_LATEST = ("Only the latest reply of a conversation can be regenerated; this one has newer messages after "
              "it. Send your message again instead.")


def _refuse_unless_latest(session: Session, reply: ChatMessage) -> None:
    newest = session.scalar(
        select(func.max(ChatMessage.id)).where(conversation_filter(reply.user_id, reply.project_id))
    )
    if newest != reply.id:
        session.rollback()
        raise Conflict(NOT_LATEST, message_id=reply.id)


def regenerate_reply(
    session: Session, *, user_id: int, message_id: int, settings: ChatSettings, streams: ReplyStreams,
    model: Any = None, start_early: Any = None,
) -> SentMessage:
    """A new reply to the person's message that `message_id` answered. Commits once, like `send_message`.

    `Conflict` when the reply is still being written, is not its conversation's latest message, or its
    person's message is gone; `NotFound` for someone else's; `InsufficientCredits` as any send. `model`:
    another model for the new reply (the old reply's by default).
    """
    if lifecycle.is_draining():
        raise Unavailable("This server is restarting; please try again.")
    reply = access.owned_reply(session, user_id=user_id, message_id=message_id)
    if reply.status not in FINAL_STATUSES:
        raise Conflict("This reply is still being written; stop it or wait for it to finish first.")
    question = session.get(ChatMessage, reply.reply_to_id) if reply.reply_to_id is not None else None
    if question is None or question.user_id != user_id or question.role != ROLE_USER:
        raise Conflict("The message that led to this reply is gone, so it cannot be sent again.")
    _refuse_unless_latest(session, reply)
    if model in (None, ""):
        model = reply.model if reply.model in settings.models else None
    model_name = choose_model(model, settings)
    project = (access.owned_project(session, user_id=user_id, project_id=reply.project_id)
               if reply.project_id is not None else None)
    prompt = _prompt_for(session, user_id=user_id, project=project, message=question.content, model=model_name,
                         settings=settings, before_id=question.id)
    price = settings.price(model_name)
    sized = lock_payer_room(session, user_id=user_id, project=project, model=model_name,
                            prompt_tokens=prompt.prompt_tokens, price=price, settings=settings)
    _refuse_unless_latest(session, reply)  # again under the lock: a second click sees the first's reply
    now = utcnow()
    reply_id = _add_reply(session, user_id=user_id, project_id=reply.project_id, reply_to_id=question.id,
                          model=model_name, prompt_tokens=prompt.prompt_tokens, now=now,
                          parts=prompt_parts(prompt))
    hold_id = place_reply_hold(session, sized, reply_id=reply_id)
    return _commit_send(session, user_id=user_id, payer_id=sized.payer.account_id, project=project,
                        user_message_id=question.id, reply_id=reply_id, hold_id=hold_id, model=model_name,
                        prompt=prompt, room=sized.room, price=price, settings=settings, streams=streams, now=now,
                        start_early=start_early)



