"""Chat: sending a message, generating the reply in the background, stopping it, charging it, history.

The life of a reply:
1. `send_message` validates the text, stores the person's message and a `pending` assistant message,
   places a credit hold sized from the prompt and the reply's room (`max_completion_tokens`), and
   publishes the stream's `start` event. All in one transaction: on `InsufficientCredits` nothing is
   stored and no provider is called.
2. `start_generation` runs `generate_reply` in a background thread (a greenlet under gevent) of this
   web process. It streams from OpenAI and writes `delta` events to the reply's stream
   (`services/streams.py`), coalesced to at most one per window (`coalesce_window_s`: 0.1 s, longer
   when this process generates many replies at once), and saves the text and a heartbeat to the
   database every `save_interval_s` (3 s, longer under load). No HTTP connection is involved: readers
   follow the stream, so a reply keeps generating (and is saved and charged) when its tab closes.
3. The reply ends exactly once (`_finish_reply`, under a row lock on the message): `complete`,
   `stopped` or `failed`, with the hold settled for the tokens used (the provider's usage when it
   sent one, else Sorya's offline estimate; `usage_source` records which) or released when nothing
   was produced. Then the `done` or `error` event.

Stop: `request_stop` raises a flag in the stream store; the process generating the reply polls the flags
of its replies every `STOP_POLL_INTERVAL_S` and ends the reply itself when its provider does not answer
within `STOP_GRACE_S`. A process that dies mid-reply leaves a stale heartbeat:
`sweep_stale_generations` (run by `flask credits sweep`) fails such replies and charges what they
produced.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, inspect, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.metrics import TOKENS
from app.models import Blob, ChatMessage, Project, Snapshot, SnapshotFile
from app.models.base import utcnow
from app.models.chat import (
    FINAL_STATUSES,
    ROLE_ASSISTANT,
    ROLE_USER,
    STATUS_COMPLETE,
    STATUS_FAILED,
    STATUS_PENDING,
    STATUS_STOPPED,
    STATUS_STREAMING,
)
from app.providers import openai_client
from app.providers.openai_client import ClientSettings, OpenAIFailure, TextDelta, Usage
from app.services import credits, lifecycle
from app.services.admission import INTERACTIVE
from app.services.chat_context import (
    HistoryMessage,
    ProjectContext,
    ProjectFile,
    build_prompt,
    estimate_tokens,
    recent_texts,
    referenced_files,
)
from app.services.errors import InsufficientCredits, InvalidRequest, NotFound, TooLarge, Unavailable
from app.services.streams import ReplyStreams, StreamEvent
from app.services.transactions import is_lock_conflict

if TYPE_CHECKING:
    from flask import Flask

    from config import Config

# The table itself, for the UPDATEs on a reply's hot path (progress, heartbeats, its end): Core statements,
# which skip the ORM's bulk-update machinery (session synchronisation), ~1 ms of CPU each.
MESSAGES = ChatMessage.__table__

log = logging.getLogger(__name__)

USAGE_PROVIDER = "provider"
USAGE_ESTIMATE = "estimate"
# A reply that cannot afford this much room is refused up front rather than cut off at once.
MIN_COMPLETION_TOKENS = 256
HISTORY_LOAD_LIMIT = 200
MAX_REFERENCED_FILES = 20
COALESCE_WINDOW_S = 0.1
# Under load the window grows (up to COALESCE_WINDOW_MAX_S): each delta costs a provider read, a Redis
# write and a write to every reader, so fewer, larger deltas keep a busy process keeping up with its
# providers instead of falling behind them. Up to WINDOW_BASE_GENERATIONS replies keep the base window.
COALESCE_WINDOW_MAX_S = 0.5
WINDOW_BASE_GENERATIONS = 25
COALESCE_MAX_CHARS = 4096
# How often a generating reply's text so far is written to its row (what a page loaded mid-reply shows
# before its stream catches up, and what survives a process dying without Redis). Each save rewrites the
# whole text, so under load (beyond WINDOW_BASE_GENERATIONS replies) the interval grows, up to the max:
# the reply's event stream holds every delta meanwhile.
SAVE_INTERVAL_S = 3.0
SAVE_INTERVAL_MAX_S = 10.0
HEARTBEAT_INTERVAL_S = 10.0
STOP_POLL_INTERVAL_S = 0.2
STOP_GRACE_S = 0.5
STOP_WAIT_S = 3.0
# A reply whose heartbeat is older than this has lost its process (heartbeats come every 10 s).
STALE_AFTER_S = 90
# A runaway stream is ended well before its hold could expire (credits.HOLD_TTL_S).
MAX_GENERATION_S = credits.HOLD_TTL_S - 120
HISTORY_MAX_LIMIT = 100
SEARCH_LIMIT = 50

_CONTROL_CHARS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ChatSettings:
    """The settings chat needs, as plain values (built from `Config` by the routes)."""

    models: list[str]
    default_model: str
    max_message_chars: int
    max_completion_tokens: int
    model_prices: dict[str, tuple[int, int]]
    default_price_per_1k: int
    provider: ClientSettings

    @classmethod
    def from_config(cls, config: Config) -> ChatSettings:
        return cls(
            models=list(config.OPENAI_MODELS),
            default_model=config.OPENAI_MODEL,
            max_message_chars=config.MAX_MESSAGE_CHARS,
            max_completion_tokens=config.OPENAI_MAX_COMPLETION_TOKENS,
            model_prices=dict(config.MODEL_PRICES),
            default_price_per_1k=config.CREDITS_PER_1K_TOKENS,
            provider=ClientSettings(
                base_url=config.OPENAI_BASE_URL, api_key=config.OPENAI_API_KEY, timeout_s=config.OPENAI_TIMEOUT_S
            ),
        )

    def price(self, model: str) -> credits.Price:
        return credits.price_for_model(model, self.model_prices, self.default_price_per_1k)


# -- sending -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationJob:
    """Everything the background generation needs, as plain values."""

    message_id: int
    user_id: int
    model: str
    messages: list[dict[str, str]]
    prompt_tokens_estimate: int
    max_completion_tokens: int
    hold_id: int
    price: credits.Price
    provider: ClientSettings


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
    cleaned = _CONTROL_CHARS_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
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


def owned_project(session: Session, *, user_id: int, project_id: int) -> Project:
    """The project, when it belongs to the user; `NotFound` otherwise (never someone else's)."""
    project = session.get(Project, project_id)
    if project is None or project.user_id != user_id:
        raise NotFound("There is no such project.")
    return project


def conversation_filter(user_id: int, project_id: int | None) -> Any:
    scope = ChatMessage.project_id.is_(None) if project_id is None else ChatMessage.project_id == project_id
    return and_(ChatMessage.user_id == user_id, scope)


def _load_history(session: Session, user_id: int, project_id: int | None) -> list[HistoryMessage]:
    rows = session.execute(
        select(ChatMessage.role, ChatMessage.content)
        .where(conversation_filter(user_id, project_id), ChatMessage.content != "")
        .order_by(ChatMessage.id.desc())
        .limit(HISTORY_LOAD_LIMIT)
    ).all()
    return [HistoryMessage(role, content) for role, content in reversed(rows)]


def _load_project_context(
    session: Session, project: Project, new_message: str, history: list[HistoryMessage]
) -> ProjectContext:
    """The latest snapshot's paths, with contents loaded only for the files the conversation names."""
    snapshot_id = session.execute(
        select(Snapshot.id).where(Snapshot.project_id == project.id).order_by(Snapshot.number.desc()).limit(1)
    ).scalar_one_or_none()
    if snapshot_id is None:
        return ProjectContext(project.name, [])
    rows = session.execute(
        select(SnapshotFile.path, SnapshotFile.blob_id)
        .where(SnapshotFile.snapshot_id == snapshot_id)
        .order_by(SnapshotFile.path)
    ).all()
    paths = [ProjectFile(path, None) for path, _blob_id in rows]
    wanted = {f.path for f in referenced_files(paths, recent_texts(new_message, history))[:MAX_REFERENCED_FILES]}
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


def send_message(
    session: Session,
    *,
    user_id: int,
    text: Any,
    project_id: int | None,
    model: Any,
    settings: ChatSettings,
    streams: ReplyStreams,
) -> SentMessage:
    """Store the person's message and a pending reply, hold the reply's worst-case cost. Commits once.

    Raises `InvalidRequest` (empty message, unknown model), `TooLarge` (over `max_message_chars`),
    `NotFound` (someone else's project) and `InsufficientCredits` (nothing is stored then). When the
    balance cannot cover `max_completion_tokens`, the reply's room shrinks to what it covers, down to
    `MIN_COMPLETION_TOKENS`. Publishes the stream's `start` event (id 1).
    """
    if lifecycle.is_draining():
        # This process is shutting down: the client retries, and the load balancer sends it elsewhere.
        raise Unavailable("This server is restarting; please send your message again.")
    message = clean_message_text(text, settings.max_message_chars)
    model_name = choose_model(model, settings)
    project = owned_project(session, user_id=user_id, project_id=project_id) if project_id is not None else None

    history = _load_history(session, user_id, project_id)
    project_context = _load_project_context(session, project, message, history) if project else None
    prompt = build_prompt(
        model=model_name,
        new_message=message,
        history=history,
        max_completion_tokens=settings.max_completion_tokens,
        project=project_context,
    )
    price = settings.price(model_name)
    # Locked once, here: the reply's room is sized from the very balance the hold is placed under, and
    # place_hold does not take the lock a second time (one round trip fewer than read-then-lock).
    balance = credits.lock_balance(session, user_id)
    available = balance.balance - balance.held
    room = _affordable_completion_tokens(available, prompt.prompt_tokens, price, settings.max_completion_tokens)
    if room < min(MIN_COMPLETION_TOKENS, settings.max_completion_tokens):
        needed = credits.reply_cost(prompt.prompt_tokens, settings.max_completion_tokens, price)
        session.rollback()
        raise InsufficientCredits(
            f"A reply from {model_name} may cost up to {needed:,} credits and you have {max(available, 0):,} "
            "available. Choose a plan to get more credits.",
            needed=needed,
            available=max(available, 0),
        )

    now = utcnow()
    user_message = ChatMessage(
        user_id=user_id, project_id=project_id, role=ROLE_USER, content=message, model=model_name,
        status=STATUS_COMPLETE, created_at=now, finished_at=now,
    )
    session.add(user_message)
    session.flush()
    reply = ChatMessage(
        user_id=user_id, project_id=project_id, role=ROLE_ASSISTANT, content="", model=model_name,
        reply_to_id=user_message.id, status=STATUS_PENDING, heartbeat_at=now, created_at=now,
        # The prompt's estimate until the provider's usage replaces it: the sweep charges by it.
        tokens_in=prompt.prompt_tokens,
    )
    session.add(reply)
    session.flush()
    user_message_id, reply_id = user_message.id, reply.id
    # place_hold commits the two messages with the hold, or rolls all three back when credits fall short.
    hold = credits.place_hold(
        session,
        user_id=user_id,
        amount=credits.reply_cost(prompt.prompt_tokens, room, price),
        idempotency_key=f"chat-reply:{reply_id}",
        message_id=reply_id,
        new_key=True,  # the reply was created just above, in this very transaction
        locked_balance=balance,
    )
    hold_id = inspect(hold).identity[0]  # the committed hold is expired: `hold.id` would reload it
    # The reply's hold_id is stored by the generation's first save, off the path to the first token;
    # until then the hold is found by its key (`_reply_hold_id`).
    if project is not None:
        session.execute(update(Project).where(Project.id == project.id).values(updated_at=now))
        session.commit()
    streams.publish(reply_id, StreamEvent(1, "start", {"user_message_id": user_message_id, "message_id": reply_id}))
    log.info(
        "chat: reply=%s user=%s model=%s prompt_tokens~%s room=%s history=%s/%s files=%s",
        reply_id, user_id, model_name, prompt.prompt_tokens, room, prompt.history_kept,
        prompt.history_kept + prompt.history_dropped, len(prompt.files_included),
    )
    job = GenerationJob(
        message_id=reply_id, user_id=user_id, model=model_name, messages=prompt.messages,
        prompt_tokens_estimate=prompt.prompt_tokens, max_completion_tokens=room, hold_id=hold_id, price=price,
        provider=settings.provider,
    )
    return SentMessage(user_message_id=user_message_id, reply_id=reply_id, job=job)


# -- generation ----------------------------------------------------------------------------------


@dataclass
class Generation:
    """One reply being generated in this process: its cancel flag, its stream writer, its text so far."""

    job: GenerationJob
    streams: ReplyStreams
    app: Flask
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pieces: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    next_event_id: int = 2
    last_flush: float = 0.0
    finished: bool = False
    window_s: float = COALESCE_WINDOW_S
    stop_requested_at: float | None = None
    provider_stream: openai_client.ReplyStream | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def add_text(self, text: str) -> None:
        """Buffer a piece; publish the buffer when the window has passed (the first piece at once)."""
        with self.lock:
            if self.finished:
                return
            self.pieces.append(text)
            self.pending.append(text)
            now = time.monotonic()
            buffered = sum(len(p) for p in self.pending)
            if now - self.last_flush >= self.window_s or buffered >= COALESCE_MAX_CHARS:
                self._flush_locked(now)

    def flush_if_due(self) -> None:
        """Publish text buffered longer than the window (the provider paused after sending it)."""
        with self.lock:
            now = time.monotonic()
            if not self.finished and self.pending and now - self.last_flush >= self.window_s:
                self._flush_locked(now)

    def _flush_locked(self, now: float) -> None:
        if not self.pending:
            return
        event = StreamEvent(self.next_event_id, "delta", {"text": "".join(self.pending)})
        self.next_event_id += 1
        self.pending.clear()
        self.last_flush = now
        self.streams.publish_soon(self.job.message_id, event)


class GenerationRegistry:
    """The replies this process is generating, and the supervisor thread that serves them.

    Every `STOP_POLL_INTERVAL_S` the supervisor publishes text a reply has buffered past the coalescing
    window (its provider paused), reads the stop flags of the active replies (one Redis round trip for
    all of them) and cancels the flagged ones, ending any whose provider stays silent for
    `STOP_GRACE_S`; every `HEARTBEAT_INTERVAL_S` it touches their heartbeats in one UPDATE, so a
    slow-thinking model is never mistaken for a dead process.
    """

    def __init__(self) -> None:
        self._active: dict[int, Generation] = {}
        self._lock = threading.Condition()
        self._supervisor: threading.Thread | None = None

    def add(self, generation: Generation) -> None:
        with self._lock:
            self._active[generation.job.message_id] = generation
            if self._supervisor is None or not self._supervisor.is_alive():
                self._supervisor = threading.Thread(target=self._supervise, name="chat-supervisor", daemon=True)
                self._supervisor.start()

    def remove(self, generation: Generation) -> None:
        with self._lock:
            if self._active.get(generation.job.message_id) is generation:
                del self._active[generation.job.message_id]
            self._lock.notify_all()

    def active(self) -> list[Generation]:
        with self._lock:
            return list(self._active.values())

    def count(self) -> int:
        return len(self._active)

    def active_ids(self) -> list[int]:
        with self._lock:
            return list(self._active)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no reply is generating in this process (graceful shutdown, tests)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def cancel_all(self) -> None:
        """Stop every reply of this process (shutdown): each ends as `stopped`, charged for its text."""
        for generation in self.active():
            generation.cancel.set()
            generation.stop_requested_at = generation.stop_requested_at or time.monotonic()

    def _supervise(self) -> None:
        last_heartbeat = time.monotonic()
        while True:
            time.sleep(STOP_POLL_INTERVAL_S)
            generations = self.active()
            if not generations:
                continue
            try:
                for generation in generations:
                    generation.flush_if_due()
                self._poll_stops(generations)
                if time.monotonic() - last_heartbeat >= HEARTBEAT_INTERVAL_S:
                    last_heartbeat = time.monotonic()
                    _touch_heartbeats(generations)
            except Exception:  # noqa: BLE001 - the supervisor must outlive a Redis or database hiccup
                log.exception("chat: supervisor pass failed")

    @staticmethod
    def _poll_stops(generations: list[Generation]) -> None:
        by_store: dict[int, list[Generation]] = {}
        for generation in generations:
            by_store.setdefault(id(generation.streams), []).append(generation)
        now = time.monotonic()
        for group in by_store.values():
            flagged = group[0].streams.stop_requested([g.job.message_id for g in group if not g.cancel.is_set()])
            for generation in group:
                if generation.job.message_id in flagged:
                    generation.stop_requested_at = now
                    generation.cancel.set()
                elif (
                    generation.cancel.is_set()
                    and generation.stop_requested_at is not None
                    and now - generation.stop_requested_at >= STOP_GRACE_S
                    and not generation.finished
                ):
                    # The provider sends nothing (a model still thinking): end the reply from here.
                    threading.Thread(target=_finish_in_app, args=(generation,), daemon=True).start()


GENERATIONS = GenerationRegistry()


def _grown_under_load(base_s: float, max_s: float, generating: int) -> float:
    """`base_s` up to WINDOW_BASE_GENERATIONS replies generating at once, then in proportion, up to `max_s`."""
    return min(max_s, base_s * max(1.0, generating / WINDOW_BASE_GENERATIONS))


def coalesce_window_s(generating: int) -> float:
    """The coalescing window for a process generating `generating` replies at once."""
    return _grown_under_load(COALESCE_WINDOW_S, COALESCE_WINDOW_MAX_S, generating)


def save_interval_s(generating: int) -> float:
    """How often a reply's text is saved while the process generates `generating` replies at once."""
    return _grown_under_load(SAVE_INTERVAL_S, SAVE_INTERVAL_MAX_S, generating)


@lifecycle.on_shutdown("chat generations")
def finish_or_stop_generations(deadline: float) -> None:
    """On shutdown: let this process's replies finish until `deadline`, then stop the rest (each is
    charged for the text it wrote, its hold settled or released, its stream ended)."""
    if not GENERATIONS.wait_idle(max(0.0, deadline - time.monotonic())):
        GENERATIONS.cancel_all()
        GENERATIONS.wait_idle(lifecycle.ABORT_ALLOWANCE_S)


def _touch_heartbeats(generations: list[Generation]) -> None:
    by_app: dict[int, list[Generation]] = {}
    for generation in generations:
        by_app.setdefault(id(generation.app), []).append(generation)
    for group in by_app.values():
        with group[0].app.app_context():
            from app.extensions import db

            # By primary key only, in id order: a filter on `status` would let MariaDB walk the
            # (status, heartbeat_at) index and lock its entries before the rows, the opposite order of a
            # reply being finished (row, then index), and the two deadlock. An unfinished reply is
            # exactly one with a heartbeat (its end clears it).
            db.session.execute(
                update(MESSAGES)
                .where(MESSAGES.c.id.in_(sorted(g.job.message_id for g in group)),
                       MESSAGES.c.heartbeat_at.is_not(None))
                .values(heartbeat_at=utcnow())
            )
            db.session.commit()
            db.session.remove()


def start_generation(app: Flask, job: GenerationJob, streams: ReplyStreams) -> Generation:
    """Generate the reply in a background thread of this process; returns at once."""
    generation = Generation(job=job, streams=streams, app=app)
    GENERATIONS.add(generation)
    thread = threading.Thread(target=_run_in_app, args=(generation,), name=f"reply-{job.message_id}", daemon=True)
    thread.start()
    return generation


def _run_in_app(generation: Generation) -> None:
    from app.extensions import db

    try:
        with generation.app.app_context():
            try:
                generate_reply(db.session, generation)
            finally:
                db.session.remove()
    except Exception:  # noqa: BLE001 - a background thread has no caller to raise to
        log.exception("chat: reply %s crashed", generation.job.message_id)
        _finish_in_app(generation, failure=OpenAIFailure("server", "Something went wrong while writing the reply."))
    finally:
        GENERATIONS.remove(generation)


def _finish_in_app(generation: Generation, failure: OpenAIFailure | None = None) -> None:
    from app.extensions import db

    with generation.app.app_context():
        try:
            finish_generation(db.session, generation, failure=failure)
        except Exception:  # noqa: BLE001 - logged; the stale sweep is the safety net
            log.exception("chat: could not finish reply %s", generation.job.message_id)
        finally:
            db.session.remove()


def generate_reply(session: Session, generation: Generation) -> None:
    """Stream the reply from OpenAI into its event stream, then finish it (exactly once)."""
    job = generation.job
    started = time.monotonic()
    last_save = started
    usage: Usage | None = None
    failure: OpenAIFailure | None = None
    try:
        reply_stream = openai_client.stream_reply(
            job.provider, model=job.model, messages=job.messages,
            max_completion_tokens=job.max_completion_tokens, cancel=generation.cancel,
        )
        generation.provider_stream = reply_stream
        first = True
        for event in reply_stream:
            if isinstance(event, TextDelta):
                generation.add_text(event.text)
                window_s = coalesce_window_s(GENERATIONS.count())
                if first or window_s != generation.window_s:
                    # The first token went out at once; from now on tokens travel in windows.
                    generation.window_s = window_s
                    reply_stream.pace_reads(window_s)
                first = False
            elif isinstance(event, Usage):
                usage = event
            if generation.cancel.is_set() or generation.finished:
                reply_stream.close()
                break
            now = time.monotonic()
            if now - started > MAX_GENERATION_S:
                generation.cancel.set()
                reply_stream.close()
                break
            if now - last_save >= save_interval_s(GENERATIONS.count()):
                # No save at the first token: a commit there would sit on the path of every reply's start
                # (and, under a burst of sends, compete with them). The first save, one interval in,
                # marks the reply `streaming` and links its hold; a shorter reply is stored by its end
                # alone. Until then the reply is `pending` (read alike), and the stale sweep still
                # finds it by the heartbeat set when it was created.
                _save_progress(session, job.message_id, generation.text, status=STATUS_STREAMING,
                               hold_id=job.hold_id)
                last_save = now
    except OpenAIFailure as exc:
        failure = exc
    if generation.cancel.is_set():
        failure = None  # a failure caused by our own cancel (a retry wait, a closed stream) is a stop
    finish_generation(session, generation, failure=failure, usage=usage)


def _save_progress(
    session: Session, message_id: int, text: str, *, status: str | None = None, hold_id: int | None = None
) -> None:
    values: dict[str, Any] = {"content": text, "heartbeat_at": utcnow()}
    if status:
        values["status"] = status
    if hold_id is not None:
        values["hold_id"] = hold_id
    session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.id == message_id, MESSAGES.c.status.in_((STATUS_PENDING, STATUS_STREAMING)))
        .values(**values)
    )
    session.commit()


def finish_generation(
    session: Session, generation: Generation, *, failure: OpenAIFailure | None, usage: Usage | None = None
) -> None:
    """End an in-process reply once: flush its text, settle, store, publish the terminal event."""
    with generation.lock:
        if generation.finished:
            return
        generation._flush_locked(time.monotonic())
        generation.finished = True
        event_id = generation.next_event_id
        generation.next_event_id += 1
    if generation.cancel.is_set():
        status = STATUS_STOPPED
    elif failure is not None:
        status = STATUS_FAILED
    else:
        status = STATUS_COMPLETE
    job = generation.job
    for attempt in range(1, FINISH_ATTEMPTS + 1):
        try:
            with _finish_slots:
                INTERACTIVE.wait_quiet()  # pages first (services/admission.py)
                outcome = _finish_reply(
                    session, message_id=job.message_id, text=generation.text, status=status, failure=failure,
                    usage=usage, prompt_tokens_estimate=job.prompt_tokens_estimate, price=job.price,
                    hold_id=job.hold_id, user_id=job.user_id, model=job.model,
                )
            break
        except OperationalError as exc:
            # A deadlock or lock wait timeout rolled the whole transaction back: nothing was stored or
            # charged, so ending the reply again is safe (and _finish_reply is idempotent anyway).
            session.rollback()
            if attempt == FINISH_ATTEMPTS or not is_lock_conflict(exc):
                raise
            log.warning("chat: reply %s hit a lock conflict while ending (attempt %s); retrying",
                        job.message_id, attempt)
            time.sleep(0.05 * attempt)
    if outcome is not None:
        _publish_end(generation.streams, job.message_id, event_id, outcome)


FINISH_ATTEMPTS = 4
# Ending replies is admitted a few at a time per process, like sending (app/web/chat.py): replies that
# started together end together, and each end is a ledger transaction; all at once, they would hold the
# whole database pool while page views wait for a connection. Waiting here holds no connection (the
# generation's last save committed), and the ends take the same CPU in a different order. An admitted
# end also lets the process's page views go first (services/admission.py).
MAX_CONCURRENT_FINISHES = 4
_finish_slots = threading.BoundedSemaphore(MAX_CONCURRENT_FINISHES)


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


def _lock_unfinished_reply(session: Session, message_id: int) -> ChatMessage | None:
    message = session.execute(
        select(ChatMessage).where(ChatMessage.id == message_id).with_for_update()
    ).scalar_one_or_none()
    if message is None or message.status in FINAL_STATUSES:
        session.rollback()
        return None
    return message


def _finish_reply(
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

    `hold_id`, `user_id`, `model`: the reply's, when the caller knows them (the process that generated
    it): the end is then one guarded UPDATE, with no read of the row first. Otherwise (the stale sweep)
    the row is read under its lock and the hold found from it or by its key.

    Returns None when the reply had already ended (another process or the sweep got there first).
    Charging: the provider's usage when it sent one, else the estimate of the prompt and of the text
    produced; a reply that produced nothing releases its hold and costs nothing.
    """
    if text:
        if usage is not None:
            tokens_in, tokens_out, source = usage.prompt_tokens, usage.completion_tokens, USAGE_PROVIDER
        else:
            tokens_in, tokens_out, source = prompt_tokens_estimate, estimate_tokens(text), USAGE_ESTIMATE
        cost = credits.reply_cost(tokens_in, tokens_out, price)
    else:
        tokens_in = tokens_out = cost = 0
        source = None
    values: dict[str, Any] = {
        "content": text, "status": status, "tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost,
        "usage_source": source, "finished_at": utcnow(), "heartbeat_at": None,
        "error_code": _error_code(failure) if status == STATUS_FAILED else None,
        "error_message": failure.message[:500] if failure is not None and status == STATUS_FAILED else None,
    }
    if hold_id is not None and user_id is not None and model is not None:
        ended = session.execute(
            update(MESSAGES)
            .where(MESSAGES.c.id == message_id, MESSAGES.c.status.in_((STATUS_PENDING, STATUS_STREAMING)))
            .values(hold_id=hold_id, **values)
        )
        if ended.rowcount == 0:
            session.rollback()
            return None
    else:
        message = _lock_unfinished_reply(session, message_id)
        if message is None:
            return None
        hold_id = _reply_hold_id(session, message)
        user_id, model = message.user_id, message.model
        for name, value in dict(values, hold_id=hold_id).items():
            setattr(message, name, value)
    charge_meta = {"message_id": message_id, "tokens_in": tokens_in, "tokens_out": tokens_out,
                   "usage_source": source, "status": status}
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
        # The hold was closed without this charge (or never found): charge by a direct entry, once (same
        # key), clamped at a zero balance: the reply was delivered.
        credits.post_ledger_entry(session, user_id=user_id, delta=-cost, reason=credits.REASON_CHAT,
                                  idempotency_key=key, meta=charge_meta, model=model, allow_clamp=True)
        balance = None
    if balance is None:
        row = credits.read_balance(session, user_id)
        balance = row.balance if row else 0
        session.commit()
    outcome = ReplyOutcome(
        message_id=message_id, status=status, tokens_in=tokens_in, tokens_out=tokens_out, cost=cost,
        balance=balance, usage_source=source,
        error_code=values["error_code"], error_message=values["error_message"],
    )
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
    return outcome


def _reply_hold_id(session: Session, message: ChatMessage) -> int | None:
    if message.hold_id is not None:
        return message.hold_id
    hold = credits.find_hold(session, f"chat-reply:{message.id}")
    return hold.id if hold is not None else None


def _error_code(failure: OpenAIFailure | None) -> str:
    if failure is None:
        return "interrupted"
    return {"auth": "provider_auth", "busy": "provider_busy", "timeout": "provider_timeout",
            "cut": "provider_cut", "refused": "provider_refused"}.get(failure.reason, "upstream_error")


def _publish_end(streams: ReplyStreams, message_id: int, event_id: int, outcome: ReplyOutcome) -> None:
    data: dict[str, Any] = {
        "message_id": message_id, "tokens_in": outcome.tokens_in, "tokens_out": outcome.tokens_out,
        "cost": outcome.cost, "balance": outcome.balance, "status": outcome.status,
        "usage_source": outcome.usage_source,
    }
    streams.flush()  # the reply's deltas are written before its last event
    if outcome.status == STATUS_FAILED:
        data.update(code="upstream_error", message=outcome.error_message or "The reply failed.",
                    reason=outcome.error_code)
        streams.publish(message_id, StreamEvent(event_id, "error", data))
    else:
        streams.publish(message_id, StreamEvent(event_id, "done", data))
    streams.finish(message_id)


# -- following a reply ---------------------------------------------------------------------------

KEEPALIVE_S = 15.0
STATUS_CHECK_S = 10.0


def terminal_events_from_message(message: ChatMessage, after_id: int, balance: int) -> list[StreamEvent]:
    """The stream rebuilt from a finished reply whose events have expired (or were never written)."""
    events: list[StreamEvent] = []
    next_id = after_id + 1
    if after_id == 0:
        events.append(StreamEvent(1, "start", {"user_message_id": message.reply_to_id, "message_id": message.id}))
        next_id = 2
        if message.content:
            events.append(StreamEvent(2, "delta", {"text": message.content}))
            next_id = 3
    outcome = ReplyOutcome(
        message_id=message.id, status=message.status, tokens_in=message.tokens_in, tokens_out=message.tokens_out,
        cost=message.cost, balance=balance, usage_source=message.usage_source, error_code=message.error_code,
        error_message=message.error_message,
    )
    collector = _CollectingStreams()
    _publish_end(collector, message.id, next_id, outcome)
    return events + collector.events


class _CollectingStreams(ReplyStreams):
    """Collects what `_publish_end` would publish, to rebuild a stream's end from the database."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []

    def publish(self, message_id: int, event: StreamEvent) -> bool:
        self.events.append(event)
        return True

    def finish(self, message_id: int) -> None:
        pass


def follow_reply(
    streams: ReplyStreams,
    message_id: int,
    after_id: int,
    *,
    load_finished: Callable[[int], list[StreamEvent] | None],
    keepalive_s: float = KEEPALIVE_S,
) -> Iterator[StreamEvent | None]:
    """The reply's events after `after_id`, following it to its end; None marks an idle keepalive.

    `load_finished(after_id)` returns the events rebuilt from the database when the reply has ended,
    else None; it is asked when the stream has nothing (at once, then every `STATUS_CHECK_S`), so a
    reply whose events expired, or whose process died, still ends for the reader.
    """
    last_id = after_id
    last_event = last_check = time.monotonic()
    checked_once = False
    while True:
        events = streams.read(message_id, last_id, timeout_s=3.0 if checked_once else 0.5)
        now = time.monotonic()
        if events:
            for event in events:
                yield event
                last_id = event.id
                if event.is_terminal:
                    return
            last_event = now
            if not checked_once:
                # The stream is alive: the database is asked only every STATUS_CHECK_S from now on (not
                # by every reader whose first token is late, as under a burst of sends).
                checked_once, last_check = True, now
            continue
        if not checked_once or now - last_check >= STATUS_CHECK_S:
            if not checked_once:
                last = streams.last_event(message_id)
                if last is not None and last.is_terminal and last.id <= last_id:
                    return  # attached after the end: there is nothing more to send
            checked_once = True
            last_check = now
            rebuilt = load_finished(last_id)
            if rebuilt is not None:
                if streams.read(message_id, last_id, timeout_s=0.001):
                    continue  # the generator wrote its last events meanwhile: read them
                yield from rebuilt
                return
        if now - last_event >= keepalive_s:
            last_event = now
            yield None


# -- stop ----------------------------------------------------------------------------------------


def owned_reply(session: Session, *, user_id: int, message_id: int) -> ChatMessage:
    message = session.get(ChatMessage, message_id)
    if message is None or message.user_id != user_id or message.role != ROLE_ASSISTANT:
        raise NotFound("There is no such reply.")
    return message


def request_stop(
    session: Session, *, user_id: int, message_id: int, streams: ReplyStreams, settings: ChatSettings,
    wait_s: float = STOP_WAIT_S,
) -> str:
    """Ask the process generating the reply to stop it; wait up to `wait_s` for it to end.

    Returns the reply's status: `stopped`, or the final status it had already reached. A reply whose
    process has died (stale heartbeat) is ended here as the sweep would. Idempotent.
    """
    message = owned_reply(session, user_id=user_id, message_id=message_id)
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
    outcome = _finish_reply(session, message_id=message_id, text=text, status=status, failure=failure, usage=None,
                            prompt_tokens_estimate=prompt_estimate, price=settings.price(model))
    if outcome is None:
        return False
    if failure is not None:
        log.warning("chat: reply %s had no heartbeat since its process stopped; ended as %s", message_id, status)
    if streams is not None and last_id >= 0:
        _publish_end(streams, message_id, last_id + 1, outcome)
    return True


# -- history and search --------------------------------------------------------------------------


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
        owned_project(session, user_id=user_id, project_id=project_id)
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
        owned_project(session, user_id=user_id, project_id=project_id)
    needle = _CONTROL_CHARS_RE.sub("", query).strip()
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
