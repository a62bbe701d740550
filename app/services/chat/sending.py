"""Sending a message: the person's message and a pending reply stored, the reply's worst-case cost held,
its stream started. The generation itself is `generation.start_generation`'s (a background thread)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import InsufficientCredits, InvalidRequest, TooLarge, Unavailable
from app.models import Blob, ChatMessage, CreditBalance, CreditHold, Project, Snapshot
from app.models.base import utcnow
from app.models.chat import ROLE_ASSISTANT, ROLE_USER, STATUS_COMPLETE, STATUS_PENDING
from app.runtime import lifecycle
from app.runtime.streams import ReplyStreams, StreamEvent
from app.services import access, credits
from app.services.chat.generation import GenerationJob, StartGate
from app.services.chat.history import CONTROL_CHARS_RE, conversation_filter
from app.services.chat.prompt import (
    HistoryMessage,
    ProjectContext,
    ProjectFile,
    Prompt,
    build_prompt,
    recent_texts,
    referenced_files,
)
from app.services.chat.settings import ChatSettings
from app.services.snapshots.reading import snapshot_blob_ids
from app.services.workspaces import pool

log = logging.getLogger(__name__)

# A reply that cannot afford this much room is refused up front rather than cut off at once.
MIN_COMPLETION_TOKENS = 256
HISTORY_LOAD_LIMIT = 200
MAX_REFERENCED_FILES = 20


@dataclass(frozen=True)
class SentMessage:
    user_message_id: int
    reply_id: int
    job: GenerationJob


def clean_message_text(text: Any, max_chars: int) -> str:
    """The message as stored: newlines normalised, control characters dropped, outer blanks trimmed.

    Raises `InvalidRequest` when nothing is left and `TooLarge` above `max_chars`.
    """
    if not isinstance(text, str):
        raise InvalidRequest("Write a message first.", fields={"message": "must be text"})
    cleaned = CONTROL_CHARS_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not cleaned:
        raise InvalidRequest("Write a message first.", fields={"message": "is empty"})
    if len(cleaned) > max_chars:
        raise TooLarge(
            f"Messages are limited to {max_chars:,} characters; this one has {len(cleaned):,}.",
            fields={"message": f"longer than {max_chars:,} characters"},
            limit=max_chars,
        )
    return cleaned


def choose_model(requested: Any, settings: ChatSettings) -> str:
    if requested in (None, ""):
        return settings.default_model
    if not isinstance(requested, str) or requested not in settings.models:
        raise InvalidRequest(
            "Choose one of the available models: " + ", ".join(settings.models) + ".",
            fields={"model": "not an available model"},
        )
    return requested


def _load_history(
    session: Session, user_id: int, project_id: int | None, before_id: int | None = None,
    after_id: int | None = None,
) -> list[HistoryMessage]:
    """The conversation's latest messages, oldest first, each reply with the version it made: only those
    before `before_id` when given (a regenerated reply's), and after `after_id` (a project's *New
    conversation* marker)."""
    query = select(ChatMessage.id, ChatMessage.role, ChatMessage.content).where(
        conversation_filter(user_id, project_id), ChatMessage.content != "")
    if before_id is not None:
        query = query.where(ChatMessage.id < before_id)
    if after_id is not None:
        query = query.where(ChatMessage.id > after_id)
    rows = session.execute(query.order_by(ChatMessage.id.desc()).limit(HISTORY_LOAD_LIMIT)).all()
    versions: dict[int, int] = {}
    reply_ids = [message_id for message_id, role, _ in rows if role == ROLE_ASSISTANT]
    if project_id is not None and reply_ids:
        versions = dict(session.execute(
            select(Snapshot.source_message_id, Snapshot.number)
            .where(Snapshot.project_id == project_id, Snapshot.source_message_id.in_(reply_ids))
        ).all())
    return [HistoryMessage(role, content, versions.get(message_id)) for message_id, role, content in reversed(rows)]


def _load_project_context(
    session: Session, project: Project, new_message: str, history: list[HistoryMessage], *, edits: bool = False
) -> ProjectContext:
    """The latest snapshot's paths, with contents loaded only for the files the conversation names."""
    snapshot = session.execute(
        select(Snapshot).where(Snapshot.project_id == project.id).order_by(Snapshot.number.desc()).limit(1)
    ).scalar_one_or_none()
    if snapshot is None:
        return ProjectContext(project.name, [])
    rows = sorted(snapshot_blob_ids(session, snapshot).items())
    paths = [ProjectFile(path, None) for path, _blob_id in rows]
    wanted = {f.path for f in referenced_files(paths, recent_texts(new_message, history, edits=edits))[:MAX_REFERENCED_FILES]}
    blob_ids = {path: blob_id for path, blob_id in rows if path in wanted}
    contents: dict[int, str | None] = {}
    if blob_ids:
        for blob_id, is_binary, content in session.execute(
            select(Blob.id, Blob.is_binary, Blob.content).where(Blob.id.in_(set(blob_ids.values())))
        ).all():
            contents[blob_id] = None if is_binary else content.decode("utf-8", errors="replace")
    files = [ProjectFile(path, contents.get(blob_ids[path]) if path in blob_ids else None) for path, _ in rows]
    return ProjectContext(project.name, files)


def _affordable_completion_tokens(available: int, prompt_tokens: int, price: credits.Price, wanted: int) -> int:
    """The largest reply room (≤ wanted) whose worst-case cost the available credits cover."""
    if credits.reply_cost(prompt_tokens, wanted, price) <= available:
        return wanted
    if price.per_1k_out <= 0:
        return wanted if credits.reply_cost(prompt_tokens, 0, price) <= available else 0
    room = (available * 1000 - prompt_tokens * price.per_1k_in) // price.per_1k_out
    return max(0, min(wanted, room))


def reply_room_and_hold(available: int, prompt_tokens: int, price: credits.Price,
                        settings: ChatSettings) -> tuple[int, int]:
    """The one rule that sizes a send's hold: the reply's room (completion tokens, at most
    `max_completion_tokens`) that `available` credits cover, and the hold that room places (its worst-case
    cost). The send (`send_message`) and its estimate (`estimate.send_estimate`) both call it."""
    room = _affordable_completion_tokens(available, prompt_tokens, price, settings.max_completion_tokens)
    return room, credits.reply_cost(prompt_tokens, room, price)


def room_is_enough(room: int, settings: ChatSettings) -> bool:
    """Whether a reply of `room` tokens is sent at all (else the send is refused up front)."""
    return room >= min(MIN_COMPLETION_TOKENS, settings.max_completion_tokens)


def _prompt_for(
    session: Session, *, user_id: int, project: Project | None, message: str, model: str, settings: ChatSettings,
    before_id: int | None = None,
) -> Prompt:
    """What the model is sent: the conversation so far (before `before_id`, and after the project's *New
    conversation* marker) and the project's files, fitted to its window."""
    history = _load_history(session, user_id, project.id if project else None, before_id,
                            project.context_after_message_id if project else None)
    project_context = (_load_project_context(session, project, message, history, edits=settings.edit_replies)
                       if project else None)
    return build_prompt(
        model=model,
        new_message=message,
        history=history,
        max_completion_tokens=settings.max_completion_tokens,
        project=project_context,
        edits=settings.edit_replies,
        history_budget_tokens=settings.history_budget_tokens,
    )


def prompt_parts(prompt: Prompt) -> dict[str, Any]:
    """What a reply stores about its prompt (`ChatMessage.prompt_parts`), for its footer."""
    return {**prompt.breakdown, "files_sent": list(prompt.files_included),
            "history_kept": prompt.history_kept, "history_dropped": prompt.history_dropped}


def _lock_reply_room(
    session: Session, *, user_id: int, model: str, prompt_tokens: int, price: credits.Price, settings: ChatSettings
) -> tuple[CreditBalance, int, int]:
    """The user's balance, locked, the reply's room it covers and the hold of that room;
    `InsufficientCredits` (rolled back)
    when it covers less than `MIN_COMPLETION_TOKENS`."""
    # Locked once, here: the reply's room is sized from the very balance the hold is placed under, and
    # place_hold does not take the lock a second time (one round trip fewer than read-then-lock).
    balance = credits.lock_balance(session, user_id)
    available = balance.balance - balance.held
    room, hold = reply_room_and_hold(available, prompt_tokens, price, settings)
    if not room_is_enough(room, settings):
        needed = credits.reply_cost(prompt_tokens, settings.max_completion_tokens, price)
        session.rollback()
        raise InsufficientCredits(
            f"A reply from {model} may cost up to {needed:,} credits and you have {max(available, 0):,} "
            "available. Choose a plan to get more credits.",
            needed=needed,
            available=max(available, 0),
        )
    return balance, room, hold


def _cap_reply_room(
    session: Session, payer: pool.PoolCharge, *, room: int, prompt_tokens: int, price: credits.Price,
    settings: ChatSettings,
) -> int:
    """The reply's room within the member's monthly cap on a team pool (unchanged outside a team), read
    under the pool's balance lock `_lock_reply_room` took, so the check and the hold are one transaction
    (see `pool.check_member_cap_in_transaction`). Refuses (rolled back) with reason `member_cap` when the
    cap leaves less than `MIN_COMPLETION_TOKENS` of room."""
    cap_left = pool.cap_room_in_transaction(session, payer)
    if cap_left is None:
        return room
    capped = _affordable_completion_tokens(cap_left, prompt_tokens, price, room)
    if capped < min(MIN_COMPLETION_TOKENS, settings.max_completion_tokens):
        needed = credits.reply_cost(prompt_tokens, min(room, MIN_COMPLETION_TOKENS), price)
        refusal = pool.member_cap_refusal(session, payer, needed=needed, room=cap_left)
        session.rollback()
        raise refusal
    return capped


def _mark_member_hold(session: Session, payer: pool.PoolCharge, hold_id: int) -> None:
    """Record which member a pool's hold is for (their cap counts it), in the send's transaction."""
    if payer.member_id is not None:
        session.execute(update(CreditHold).where(CreditHold.id == hold_id).values(member_id=payer.member_id))


@dataclass(frozen=True)
class SizedReply:
    """Who pays for a reply (the sender, or their team's pool), its locked balance, its room and hold."""

    payer: pool.PoolCharge
    balance: CreditBalance
    room: int
    hold: int


def lock_payer_room(
    session: Session, *, user_id: int, project: Project | None, model: str, prompt_tokens: int,
    price: credits.Price, settings: ChatSettings,
) -> SizedReply:
    """Lock the paying balance (a team project's pool, else the sender's) and size the reply's room and
    hold within it and within the member's monthly cap: the one path every send and regenerate takes."""
    payer = pool.payer_for_send(session, user_id=user_id, project=project)
    balance, room, hold = _lock_reply_room(session, user_id=payer.account_id, model=model,
                                           prompt_tokens=prompt_tokens, price=price, settings=settings)
    capped = _cap_reply_room(session, payer, room=room, prompt_tokens=prompt_tokens, price=price, settings=settings)
    if capped != room:  # the member's cap leaves less room than the pool: hold what the cap allows
        room, hold = capped, credits.reply_cost(prompt_tokens, capped, price)
    return SizedReply(payer=payer, balance=balance, room=room, hold=hold)


def place_reply_hold(session: Session, sized: SizedReply, *, reply_id: int) -> int:
    """Hold the sized reply's cost on its payer (and mark the member a pool's hold is for); not committed."""
    hold_id = _hold_reply_cost(session, user_id=sized.payer.account_id, reply_id=reply_id, amount=sized.hold,
                               balance=sized.balance)
    _mark_member_hold(session, sized.payer, hold_id)
    return hold_id


def _add_message_and_reply(
    session: Session, *, user_id: int, project_id: int | None, message: str, model: str, prompt_tokens: int,
    now: datetime, parts: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Flush the person's message and its pending reply (not committed); returns their ids."""
    user_message = ChatMessage(
        user_id=user_id, project_id=project_id, role=ROLE_USER, content=message, model=model,
        status=STATUS_COMPLETE, created_at=now, finished_at=now,
    )
    session.add(user_message)
    session.flush()
    return user_message.id, _add_reply(session, user_id=user_id, project_id=project_id, reply_to_id=user_message.id,
                                       model=model, prompt_tokens=prompt_tokens, now=now, parts=parts)


def _add_reply(
    session: Session, *, user_id: int, project_id: int | None, reply_to_id: int, model: str, prompt_tokens: int,
    now: datetime, parts: dict[str, Any] | None = None,
) -> int:
    """Flush a pending reply to the person's message `reply_to_id` (not committed); returns its id."""
    reply = ChatMessage(
        user_id=user_id, project_id=project_id, role=ROLE_ASSISTANT, content="", model=model,
        reply_to_id=reply_to_id, status=STATUS_PENDING, heartbeat_at=now, created_at=now,
        # The prompt's estimate until the provider's usage replaces it: the sweep charges by it.
        tokens_in=prompt_tokens, prompt_parts=parts,
    )
    session.add(reply)
    session.flush()
    return reply.id


def _hold_reply_cost(session: Session, *, user_id: int, reply_id: int, amount: int, balance: CreditBalance) -> int:
    """Place the reply's hold in the send's transaction (not committed) under the balance lock
    `_lock_reply_room` took (on SQLite, the database's write lock, taken before the balance was read);
    returns its id. Any failure, `InsufficientCredits` included, rolls the whole send back: no message is
    kept without its hold."""
    try:
        hold = credits.place_hold_in_transaction(
            session,
            user_id=user_id,
            amount=amount,
            idempotency_key=f"chat-reply:{reply_id}",
            message_id=reply_id,
            new_key=True,  # the reply was created in this very transaction: no earlier hold can have its key
            locked_balance=balance,
        )
    except Exception:
        session.rollback()
        raise
    return hold.id


def send_message(
    session: Session,
    *,
    user_id: int,
    text: Any,
    project_id: int | None,
    model: Any,
    settings: ChatSettings,
    streams: ReplyStreams,
    start_early: Callable[[GenerationJob], StartGate] | None = None,
) -> SentMessage:
    """Store the person's message and a pending reply, hold the reply's worst-case cost. Commits once.

    Raises `InvalidRequest` (empty message, unknown model), `TooLarge` (over `max_message_chars`),
    `NotFound` (someone else's project) and `InsufficientCredits` (nothing is stored then). When the
    balance cannot cover `max_completion_tokens`, the reply's room shrinks to what it covers, down to
    `MIN_COMPLETION_TOKENS`. Starts the reply's stream afresh with its `start` event (id 1): whatever the
    stream store held under the new id belongs to an earlier database (`ReplyStreams.start`).

    `start_early(job)`, when given, is called once the hold is placed, before the commit: it starts the
    generation behind a `StartGate`, so the provider request travels while the transaction commits. The
    gate opens after the commit and the stream's `start`; if either fails it is abandoned and the
    provider request closed unread (the hold decides: no committed hold, no reply).
    """
    if lifecycle.is_draining():
        # This process is shutting down: the client retries, and the load balancer sends it elsewhere.
        raise Unavailable("This server is restarting; please send your message again.")
    message = clean_message_text(text, settings.max_message_chars)
    model_name = choose_model(model, settings)
    project = None
    if project_id is not None:
        project = access.owned_project(session, user_id=user_id, project_id=project_id)
    prompt = _prompt_for(session, user_id=user_id, project=project, message=message, model=model_name,
                         settings=settings)
    price = settings.price(model_name)
    sized = lock_payer_room(session, user_id=user_id, project=project, model=model_name,
                            prompt_tokens=prompt.prompt_tokens, price=price, settings=settings)
    now = utcnow()
    user_message_id, reply_id = _add_message_and_reply(
        session, user_id=user_id, project_id=project_id, message=message, model=model_name,
        prompt_tokens=prompt.prompt_tokens, now=now, parts=prompt_parts(prompt),
    )
    hold_id = place_reply_hold(session, sized, reply_id=reply_id)
    return _commit_send(session, user_id=user_id, payer_id=sized.payer.account_id, project=project,
                        user_message_id=user_message_id, reply_id=reply_id, hold_id=hold_id, model=model_name,
                        prompt=prompt, room=sized.room, price=price, settings=settings, streams=streams, now=now,
                        start_early=start_early)


def _commit_send(
    session: Session, *, user_id: int, payer_id: int, project: Project | None, user_message_id: int, reply_id: int, hold_id: int,
    model: str, prompt: Prompt, room: int, price: credits.Price, settings: ChatSettings, streams: ReplyStreams,
    now: datetime,
    start_early: Callable[[GenerationJob], StartGate] | None = None,
) -> SentMessage:
    """Commit a send (its messages and hold flushed), start the reply's stream, and describe its generation."""
    # The reply's hold_id is stored by the generation's first save, off the path to the first token;
    # until then the hold is found by its key (`ending.reply_hold_id`).
    if project is not None:
        session.execute(update(Project).where(Project.id == project.id).values(updated_at=now))
    job = GenerationJob(
        # The account the reply is settled on: the sender's own, or their team's pool.
        message_id=reply_id, user_id=payer_id, model=model, messages=prompt.messages,
        prompt_tokens_estimate=prompt.prompt_tokens, max_completion_tokens=room, hold_id=hold_id, price=price,
        provider=settings.provider, project_id=project.id if project is not None else None,
        snapshot_limits=settings.snapshot_limits,
    )
    # The hold is placed (not yet committed): the provider request may travel from here while the send
    # commits. A failed commit or start abandons it (the hold decides).
    gate = start_early(job) if start_early is not None else None
    try:
        # The one commit of a send: both messages, the hold and the project's activity, or none of them.
        session.commit()
        streams.start(reply_id, StreamEvent(1, "start", {"user_message_id": user_message_id, "message_id": reply_id}))
    except BaseException:
        if gate is not None:
            gate.abandon()
        raise
    if gate is not None:
        gate.open(job)
    log.info(
        "chat: reply=%s user=%s model=%s prompt_tokens~%s room=%s history=%s/%s files=%s",
        reply_id, user_id, model, prompt.prompt_tokens, room, prompt.history_kept,
        prompt.history_kept + prompt.history_dropped, len(prompt.files_included),
    )
    return SentMessage(user_message_id=user_message_id, reply_id=reply_id, job=job)
