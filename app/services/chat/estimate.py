"""The most a send can cost, before it is sent: the hold the send would place for this draft now.

Computed by the very functions the send sizes its hold with (`sending._prompt_for`,
`sending.reply_room_and_hold`, `sending.room_is_enough`), on the same prompt: never a second copy of the
rule. Reads only (no lock: the balance may change before the send, which then re-sizes under its lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.errors import DomainError
from app.services import access, credits
from app.services.chat.history import CONTROL_CHARS_RE
from app.services.chat.sending import (
    _prompt_for,
    choose_model,
    clean_message_text,
    reply_room_and_hold,
    room_is_enough,
)
from app.services.chat.settings import ChatSettings


@dataclass(frozen=True)
class SendEstimate:
    """`hold_credits`: the most the send costs (the hold it places); when the balance cannot cover a
    reply at all (`affordable` False), what a full reply would need instead."""

    context_tokens: int
    max_completion_tokens: int
    hold_credits: int
    balance: int
    available: int
    affordable: bool
    model: str

    def as_json(self) -> dict[str, Any]:
        return {"context_tokens": self.context_tokens, "max_completion_tokens": self.max_completion_tokens,
                "hold_credits": self.hold_credits, "balance": self.balance, "available": self.available,
                "affordable": self.affordable, "model": self.model}


def _draft_text(text: Any, settings: ChatSettings) -> str:
    """The draft as the send would store it; an empty or over-long draft is estimated as it stands (the
    send itself says what is wrong with it)."""
    try:
        return clean_message_text(text, settings.max_message_chars)
    except DomainError:
        raw = text if isinstance(text, str) else ""
        return CONTROL_CHARS_RE.sub("", raw.replace("\r\n", "\n")).strip()


def send_estimate(
    session: Session, *, user_id: int, project_id: int | None, model: Any, message_text: Any,
    settings: ChatSettings,
) -> SendEstimate:
    """What sending `message_text` to `project_id`'s conversation (the general chat when None) with `model`
    would hold now. `InvalidRequest` for an unknown model, `NotFound` for someone else's project."""
    model_name = choose_model(model, settings)
    project = access.owned_project(session, user_id=user_id, project_id=project_id) if project_id else None
    prompt = _prompt_for(session, user_id=user_id, project=project, message=_draft_text(message_text, settings),
                         model=model_name, settings=settings)
    price = settings.price(model_name)
    row = credits.read_balance(session, user_id)
    balance, held = (row.balance, row.held) if row is not None else (0, 0)
    session.rollback()
    available = max(balance - held, 0)
    room, hold = reply_room_and_hold(balance - held, prompt.prompt_tokens, price, settings)
    affordable = room_is_enough(room, settings)
    if not affordable:
        room = settings.max_completion_tokens
        hold = credits.reply_cost(prompt.prompt_tokens, room, price)
    return SendEstimate(context_tokens=prompt.prompt_tokens, max_completion_tokens=room, hold_credits=hold,
                        balance=balance, available=available, affordable=affordable, model=model_name)
