"""Following a reply: its events after a given id, to its end, from the stream or rebuilt from the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

from app.models import ChatMessage
from app.models.chat import FINAL_STATUSES
from app.runtime.streams import ReplyStreams, StreamEvent
from app.services import credits
from app.services.chat.ending import ReplyOutcome, publish_end
from app.services.snapshots.reading import snapshot_for_reply

KEEPALIVE_S = 15.0
STATUS_CHECK_S = 10.0


def terminal_events_from_message(
    message: ChatMessage, after_id: int, balance: int, *, snapshot_id: int | None = None
) -> list[StreamEvent]:
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
        error_message=message.error_message, snapshot_id=snapshot_id,
        edit_errors=(message.meta or {}).get("edit_errors") or None,
    )
    collector = _CollectingStreams()
    publish_end(collector, message.id, next_id, outcome)
    return events + collector.events


def finished_reply_events(session: Session, message_id: int, after_id: int) -> list[StreamEvent] | None:
    """The reply's events after `after_id` rebuilt from the database when it has ended, else None (the
    `load_finished` of `follow_reply`). Reads only."""
    message = session.get(ChatMessage, message_id)
    if message is None or message.status not in FINAL_STATUSES:
        return None
    balance = credits.read_balance(session, message.user_id)
    version = snapshot_for_reply(session, message.id) if message.project_id is not None else None
    return terminal_events_from_message(message, after_id, balance.balance if balance else 0,
                                        snapshot_id=version.id if version is not None else None)


class _CollectingStreams(ReplyStreams):
    """Collects what `publish_end` would publish, to rebuild a stream's end from the database."""

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
