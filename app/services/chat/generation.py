"""Generating a reply in the background of this web process, and the registry of the replies it generates.

`start_generation` runs `generate_reply` in a background thread (a greenlet under gevent). It streams
from OpenAI and writes `delta` events to the reply's stream (`app/runtime/streams.py`), coalesced to at most
one per window (`coalesce_window_s`: 0.1 s, longer when this process generates many replies at once),
and saves the text and a heartbeat to the database every `save_interval_s` (3 s, longer under load). No
HTTP connection is involved: readers follow the stream, so a reply keeps generating (and is saved and
charged) when its tab closes. It ends once, through `ending.finish_reply`.

Stop: the registry's supervisor polls the stop flags of this process's replies every
`STOP_POLL_INTERVAL_S` and ends a reply itself when its provider does not answer within `STOP_GRACE_S`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.models.base import utcnow
from app.models.chat import STATUS_COMPLETE, STATUS_FAILED, STATUS_PENDING, STATUS_STOPPED, STATUS_STREAMING
from app.providers import openai_client
from app.providers.openai_client import ClientSettings, OpenAIFailure, TextDelta, Usage
from app.runtime import lifecycle
from app.runtime.admission import INTERACTIVE
from app.runtime.streams import ReplyStreams, StreamEvent
from app.services import credits
from app.services.chat.ending import MESSAGES, ReplyOutcome, finish_reply, publish_end, version_finished_reply
from app.services.snapshots.auto import reply_writes_files
from app.services.snapshots.store import SnapshotLimits
from app.services.transactions import retry_on_lock_conflict

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

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
# A runaway stream is ended well before its hold could expire (credits.HOLD_TTL_S).
MAX_GENERATION_S = credits.HOLD_TTL_S - 120


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
    project_id: int | None = None
    # A finished reply of a project becomes its next version under these limits (None: no version).
    snapshot_limits: SnapshotLimits | None = None


class StartGate:
    """Whether a generation started before its send committed may go on; decided once, by the send.

    The provider request is issued once the send has placed its hold, while the send commits (the first
    token takes tens of milliseconds anyway). The generation reads, publishes and stores nothing, and
    is not in the registry, until the gate opens, after the commit and the stream's `start`. An
    abandoned gate (the commit or the start failed) closes the provider request unread, and the reply
    is nobody's to end: the hold decides.
    """

    def __init__(self) -> None:
        self._decided = threading.Event()
        self.job: GenerationJob | None = None
        self.on_open: list[Callable[[], None]] = []

    def open(self, job: GenerationJob) -> None:
        """The send committed `job`: the generation goes on (and joins the registry, from this thread,
        so a stop is served even while the provider has not answered yet)."""
        self.job = job
        for hook in self.on_open:
            hook()
        self._decided.set()

    def abandon(self) -> None:
        self._decided.set()

    def wait(self, timeout_s: float = 60.0) -> GenerationJob | None:
        """The committed job once the send committed; None when it failed (or never decided within
        `timeout_s`: the stale sweep ends a committed reply nobody generates)."""
        return self.job if self._decided.wait(timeout_s) else None


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
    gate: StartGate | None = None

    def admitted(self) -> bool:
        """Wait for the send's commit when the generation started before it; False, and finished so
        nothing ends it, when the send failed."""
        if self.gate is None or self.gate.wait() is not None:
            return True
        with self.lock:
            self.finished = True
        return False

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


def start_generation(
    app: Flask, job: GenerationJob, streams: ReplyStreams, *, gate: StartGate | None = None
) -> Generation:
    """Generate the reply in a background thread of this process; returns at once. With a `gate`, the
    provider request goes out now and the rest waits for the gate (`StartGate`)."""
    generation = Generation(job=job, streams=streams, app=app, gate=gate)
    if gate is None:
        GENERATIONS.add(generation)
    else:
        gate.on_open.append(lambda: GENERATIONS.add(generation))
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
        if not generation.admitted():
            reply_stream.close()
            return
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
    """End an in-process reply once: flush its text, settle, store, publish the terminal event. A reply
    whose send failed after its generation started (`StartGate` abandoned) is nobody's to end."""
    if not generation.admitted():
        return
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

    def end_reply() -> ReplyOutcome | None:
        with _finish_slots:
            INTERACTIVE.wait_quiet()  # pages first (app/runtime/admission.py)
            return finish_reply(
                session, message_id=job.message_id, text=generation.text, status=status, failure=failure,
                usage=usage, prompt_tokens_estimate=job.prompt_tokens_estimate, price=job.price,
                hold_id=job.hold_id, user_id=job.user_id, model=job.model,
            )

    # A deadlock or lock wait timeout rolled the whole transaction back: nothing was stored or charged,
    # so ending the reply again is safe (and finish_reply is idempotent anyway).
    try:
        outcome = retry_on_lock_conflict(session, end_reply, attempts=FINISH_ATTEMPTS,
                                         backoff_s=FINISH_BACKOFF_S, label=f"chat: ending reply {job.message_id}")
    except OperationalError:
        session.rollback()
        raise
    if outcome is None:
        return
    if (job.project_id is not None and job.snapshot_limits is not None and outcome.status == STATUS_COMPLETE
            and reply_writes_files(generation.text)):
        outcome = version_finished_reply(session, outcome, user_id=job.user_id, limits=job.snapshot_limits)
    publish_end(generation.streams, job.message_id, event_id, outcome)


FINISH_ATTEMPTS = 4
FINISH_BACKOFF_S = 0.05  # times the attempt number: a short pause lets the winner commit
# Ending replies is admitted a few at a time per process, like sending (app/runtime/admission.py): replies that
# started together end together, and each end is a ledger transaction; all at once, they would hold the
# whole database pool while page views wait for a connection. Waiting here holds no connection (the
# generation's last save committed), and the ends take the same CPU in a different order. An admitted
# end also lets the process's page views go first (app/runtime/admission.py).
MAX_CONCURRENT_FINISHES = 4
_finish_slots = threading.BoundedSemaphore(MAX_CONCURRENT_FINISHES)

