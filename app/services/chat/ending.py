"""How a reply ends, exactly once: its end stored and its hold settled for what it produced (or
released), then its stream's last event; stopping a reply; and the sweep that ends the replies whose
process died.

Charging: the provider's usage when it sent one, else Sorya's offline estimate of the prompt and of the
text produced (`usage_source` records which); a reply that produced nothing releases its hold and costs
nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.metrics import TOKENS
from app.models import ChatMessage, CreditHold
from app.models.base import utcnow
from app.models.chat import (
    FINAL_STATUSES,
    STATUS_COMPLETE,
    STATUS_FAILED,
    STATUS_PENDING,
    STATUS_STOPPED,
    STATUS_STREAMING,
)
from app.providers.openai_client import OpenAIFailure, Usage
from app.runtime.streams import ReplyStreams, StreamEvent
from app.services import access, credits
from app.services.chat.prompt import estimate_tokens
from app.services.chat.settings import ChatSettings
from app.services.snapshots.auto import NO_FILES_META, reply_writes_files, version_reply
from app.services.snapshots.store import SnapshotLimits

# The table itself, for the UPDATEs on a reply's hot path (progress, heartbeats, its end): Core statements,
# which skip the ORM's bulk-update machinery (session synchronisation), ~1 ms of CPU each.
MESSAGES = ChatMessage.__table__

log = logging.getLogger(__name__)

USAGE_PROVIDER = "provider"
USAGE_ESTIMATE = "estimate"
STOP_WAIT_S = 3.0
# A reply whose heartbeat is older than this has lost its process (heartbeats come every 10 s).
STALE_AFTER_S = 90


@dataclass(frozen=True)
class ReplyOutcome:
    message_id: int
    status: str
    tokens_in: int
    tokens_out: int
    cost: int
    balance: int
    usage_source: str | None
    error_code: str | None
    error_message: str | None
    # The version the reply's files made (null when none), and why its edits did not apply.
    snapshot_id: int | None = None
    edit_errors: list[dict[str, Any]] | None = None


def _lock_unfinished_reply(session: Session, message_id: int) -> ChatMessage | None:
    message = session.execute(
        select(ChatMessage).where(ChatMessage.id == message_id).with_for_update()
    ).scalar_one_or_none()
    if message is None or message.status in FINAL_STATUSES:
        session.rollback()
        return None
    return message


def _usage_and_cost(
    text: str, usage: Usage | None, prompt_tokens_estimate: int, price: credits.Price
) -> tuple[int, int, int, str | None]:
    """(tokens_in, tokens_out, cost, usage_source) of a reply that produced `text`."""
    if not text:
        return 0, 0, 0, None
    if usage is not None:
        tokens_in, tokens_out, source = usage.prompt_tokens, usage.completion_tokens, USAGE_PROVIDER
    else:
        tokens_in, tokens_out, source = prompt_tokens_estimate, estimate_tokens(text), USAGE_ESTIMATE
    return tokens_in, tokens_out, credits.reply_cost(tokens_in, tokens_out, price), source


def store_reply_end(
    session: Session, *, message_id: int, values: dict[str, Any], hold_id: int | None, user_id: int | None,
    model: str | None,
) -> tuple[int | None, int, str | None] | None:
    """Write the reply's end (`values`) in the open transaction, not committed, once: returns the reply's
    (hold_id, user_id, model), or None (rolled back) when it had already ended.

    When the caller knows `hold_id`, `user_id` and `model` (the process that generated it) the end is one
    guarded UPDATE, with no read of the row first; otherwise (the stale sweep) the row is read under its
    lock and the hold found from it or by its key.
    """
    if hold_id is not None and user_id is not None and model is not None:
        ended = session.execute(
            update(MESSAGES)
            .where(MESSAGES.c.id == message_id, MESSAGES.c.status.in_((STATUS_PENDING, STATUS_STREAMING)))
            .values(hold_id=hold_id, **values)
        )
        if ended.rowcount == 0:
            session.rollback()
            return None
        return hold_id, user_id, model
    message = _lock_unfinished_reply(session, message_id)
    if message is None:
        return None
    hold_id = reply_hold_id(session, message)
    for name, value in dict(values, hold_id=hold_id).items():
        setattr(message, name, value)
    return hold_id, reply_account_id(session, message, hold_id), message.model


def charge_reply_end(
    session: Session, *, message_id: int, hold_id: int | None, user_id: int, model: str | None, cost: int,
    charge_meta: dict[str, Any],
) -> int | None:
    """Settle the reply's hold for `cost` (release it when 0) and commit it with the end stored before.

    Returns the balance after, or None (rolled back) when another process posted this reply's charge
    meanwhile (it ended the reply too). A hold closed without this charge, or never found, is replaced
    by a direct ledger entry under the same key, clamped at a zero balance: the reply was delivered.
    """
    key = f"chat:{message_id}"
    settlement = None
    balance: int | None = None
    if hold_id is not None and cost > 0:
        settlement = credits.settle_hold_in_transaction(
            session, hold_id=hold_id, charge=cost, idempotency_key=key, meta=charge_meta, model=model,
            user_id=user_id,
        )
        balance = settlement.balance
        charge_direct = not settlement.posted and settlement.entry is None
    else:
        charge_direct = hold_id is None and cost > 0  # no hold was ever found for this reply
    released = None
    if hold_id is not None and cost == 0:
        released = credits.release_hold_in_transaction(session, hold_id=hold_id, user_id=user_id)
    try:
        session.commit()
    except IntegrityError:
        # The charge's key was posted meanwhile: whoever posted it ended this reply too.
        session.rollback()
        log.warning("chat: reply %s was charged by another process while ending", message_id)
        return None
    if settlement is not None:
        credits.log_settlement(settlement, cost)
    credits.log_release(released)
    if charge_direct and credits.find_entry(session, key) is None:
        credits.post_ledger_entry(session, user_id=user_id, delta=-cost, reason=credits.REASON_CHAT,
                                  idempotency_key=key, meta=charge_meta, model=model, allow_clamp=True)
        balance = None
    if balance is None:
        row = credits.read_balance(session, user_id)
        balance = row.balance if row else 0
        session.commit()
    return balance


def finish_reply(
    session: Session,
    *,
    message_id: int,
    text: str,
    status: str,
    failure: OpenAIFailure | None,
    usage: Usage | None,
    prompt_tokens_estimate: int,
    price: credits.Price,
    hold_id: int | None = None,
    user_id: int | None = None,
    model: str | None = None,
) -> ReplyOutcome | None:
    """Store the reply's end and charge it, in one transaction under the lock of the message row. Commits.

    `hold_id`, `user_id`, `model`: the reply's, when the caller knows them (see `store_reply_end`).
    Returns None when the reply had already ended (another process or the sweep got there first).
    """
    tokens_in, tokens_out, cost, source = _usage_and_cost(text, usage, prompt_tokens_estimate, price)
    failed = status == STATUS_FAILED
    values: dict[str, Any] = {
        "content": text, "status": status, "tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost,
        "usage_source": source, "finished_at": utcnow(), "heartbeat_at": None,
        "error_code": _error_code(failure) if failed else None,
        "error_message": failure.message[:500] if failure is not None and failed else None,
    }
    if status == STATUS_COMPLETE and not reply_writes_files(text):
        values["meta"] = NO_FILES_META  # nothing to version: no second transaction, and the sweep skips it
    stored = store_reply_end(session, message_id=message_id, values=values, hold_id=hold_id, user_id=user_id,
                             model=model)
    if stored is None:
        return None
    hold_id, user_id, model = stored
    charge_meta = {"message_id": message_id, "tokens_in": tokens_in, "tokens_out": tokens_out,
                   "usage_source": source, "status": status}
    balance = charge_reply_end(session, message_id=message_id, hold_id=hold_id, user_id=user_id, model=model,
                               cost=cost, charge_meta=charge_meta)
    if balance is None:
        return None
    metered_model = model or "unknown"
    if tokens_in:
        TOKENS.labels(model=metered_model, direction="in").inc(tokens_in)
    if tokens_out:
        TOKENS.labels(model=metered_model, direction="out").inc(tokens_out)
    log.info(
        "chat: reply=%s ended status=%s tokens=%s/%s cost=%s usage=%s%s",
        message_id, status, tokens_in, tokens_out, cost, source,
        f" reason={failure.reason}" if failure is not None else "",
    )
    return ReplyOutcome(
        message_id=message_id, status=status, tokens_in=tokens_in, tokens_out=tokens_out, cost=cost,
        balance=balance, usage_source=source, error_code=values["error_code"], error_message=values["error_message"],
    )


def version_finished_reply(
    session: Session, outcome: ReplyOutcome, *, user_id: int, limits: SnapshotLimits
) -> ReplyOutcome:
    """The outcome of a finished (stored and charged) reply with the version its files made. Never raises:
    the reply is charged and delivered whatever happens to its version (the sweep versions it later when
    this process fails here)."""
    try:
        # The reply's author, not the account it was charged on (a team's pool is nobody's project owner).
        author_id = session.execute(
            select(ChatMessage.user_id).where(ChatMessage.id == outcome.message_id)
        ).scalar_one_or_none() or user_id
        version = version_reply(session, user_id=author_id, message_id=outcome.message_id, limits=limits)
    except Exception:  # noqa: BLE001 - the money is settled; the sweep makes the version later
        session.rollback()
        log.exception("chat: reply %s ended but its version could not be made", outcome.message_id)
        return outcome
    return replace(outcome, snapshot_id=version.snapshot_id, edit_errors=version.edit_errors or None)


def reply_account_id(session: Session, message: ChatMessage, hold_id: int | None) -> int:
    """The account the reply is charged on: its hold's (a team's pool for a team project), else its
    sender's."""
    if hold_id is not None:
        account_id = session.execute(select(CreditHold.user_id).where(CreditHold.id == hold_id)).scalar_one_or_none()
        if account_id is not None:
            return account_id
    return message.user_id


def reply_hold_id(session: Session, message: ChatMessage) -> int | None:
    """The reply's hold: stored on the row by its first save, else found by the key it was placed under."""
    if message.hold_id is not None:
        return message.hold_id
    hold = credits.find_hold(session, f"chat-reply:{message.id}")
    return hold.id if hold is not None else None


def _error_code(failure: OpenAIFailure | None) -> str:
    if failure is None:
        return "interrupted"
    return {"auth": "provider_auth", "busy": "provider_busy", "timeout": "provider_timeout",
            "cut": "provider_cut", "refused": "provider_refused"}.get(failure.reason, "upstream_error")


def publish_end(streams: ReplyStreams, message_id: int, event_id: int, outcome: ReplyOutcome) -> None:
    """The reply's last event (`done`, or `error` for a failed reply), after every delta written before it."""
    data: dict[str, Any] = {
        "message_id": message_id, "tokens_in": outcome.tokens_in, "tokens_out": outcome.tokens_out,
        "cost": outcome.cost, "balance": outcome.balance, "status": outcome.status,
        "usage_source": outcome.usage_source, "snapshot_id": outcome.snapshot_id,
    }
    if outcome.edit_errors:
        data["edit_errors"] = outcome.edit_errors
    streams.flush()  # the reply's deltas are written before its last event
    if outcome.status == STATUS_FAILED:
        data.update(code="upstream_error", message=outcome.error_message or "The reply failed.",
                    reason=outcome.error_code)
        streams.publish(message_id, StreamEvent(event_id, "error", data))
    else:
        streams.publish(message_id, StreamEvent(event_id, "done", data))
    streams.finish(message_id)


# -- stop ----------------------------------------------------------------------------------------


def request_stop(
    session: Session, *, user_id: int, message_id: int, streams: ReplyStreams, settings: ChatSettings,
    wait_s: float = STOP_WAIT_S,
) -> str:
    """Ask the process generating the reply to stop it; wait up to `wait_s` for it to end.

    Returns the reply's status: `stopped`, or the final status it had already reached. A reply whose
    process has died (stale heartbeat) is ended here as the sweep would. Idempotent.
    """
    message = access.owned_reply(session, user_id=user_id, message_id=message_id)
    if message.status in FINAL_STATUSES:
        return message.status
    streams.request_stop(message_id)
    deadline = time.monotonic() + wait_s
    while True:
        session.rollback()  # end the transaction, so the next read sees the generator's commit
        status, heartbeat = session.execute(
            select(ChatMessage.status, ChatMessage.heartbeat_at).where(ChatMessage.id == message_id)
        ).one()
        if status in FINAL_STATUSES:
            return status
        if heartbeat is not None and heartbeat < utcnow() - timedelta(seconds=STALE_AFTER_S):
            _end_stale_reply(session, message_id, settings=settings, streams=streams, status=STATUS_STOPPED)
            continue
        if time.monotonic() >= deadline:
            return status
        time.sleep(0.05)


# -- the stale sweep -----------------------------------------------------------------------------


def sweep_stale_generations(
    session: Session, *, settings: ChatSettings, streams: ReplyStreams | None, now: Any = None,
    stale_after_s: int = STALE_AFTER_S,
) -> int:
    """Fail the replies whose generating process died (no heartbeat for `stale_after_s`). Commits each.

    Each keeps the text it had (the longer of the saved text and its stream), is charged for it by the
    estimate (or released when empty), and its readers get an `error` event. Safe to run from several
    processes at once: each reply is re-checked under its row lock. Returns how many were ended.
    """
    # Imported here: the generation module ends its replies through this one.
    from app.services.chat.generation import GENERATIONS

    now = now or utcnow()
    cutoff = now - timedelta(seconds=stale_after_s)
    stale_ids = session.execute(
        select(ChatMessage.id).where(
            ChatMessage.status.in_((STATUS_PENDING, STATUS_STREAMING)),
            or_(ChatMessage.heartbeat_at < cutoff,
                and_(ChatMessage.heartbeat_at.is_(None), ChatMessage.created_at < cutoff)),
        )
    ).scalars().all()
    session.rollback()
    local = set(GENERATIONS.active_ids())
    ended = 0
    for message_id in stale_ids:
        if message_id in local:
            continue  # alive in this very process (its heartbeat is merely late)
        if _end_stale_reply(session, message_id, settings=settings, streams=streams, status=STATUS_FAILED):
            ended += 1
    return ended


def _end_stale_reply(
    session: Session, message_id: int, *, settings: ChatSettings, streams: ReplyStreams | None, status: str
) -> bool:
    message = session.get(ChatMessage, message_id)
    if message is None or message.status in FINAL_STATUSES:
        session.rollback()
        return False
    text, last_id = message.content, 1
    if streams is not None:
        events = streams.read(message_id, 0, timeout_s=0.001)
        streamed = "".join(e.data.get("text", "") for e in events if e.name == "delta")
        last_id = max((e.id for e in events), default=1)
        if any(e.is_terminal for e in events):
            last_id = -1
        if len(streamed) > len(text):
            text = streamed
    prompt_estimate, model = message.tokens_in, message.model or settings.default_model
    session.rollback()
    failure = None
    if status == STATUS_FAILED:
        failure = OpenAIFailure("server", "The reply was interrupted: the server writing it stopped. "
                                          "What was written is kept.")
    outcome = finish_reply(session, message_id=message_id, text=text, status=status, failure=failure, usage=None,
                           prompt_tokens_estimate=prompt_estimate, price=settings.price(model))
    if outcome is None:
        return False
    if failure is not None:
        log.warning("chat: reply %s had no heartbeat since its process stopped; ended as %s", message_id, status)
    if streams is not None and last_id >= 0:
        publish_end(streams, message_id, last_id + 1, outcome)
    return True
