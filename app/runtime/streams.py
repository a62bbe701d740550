"""Per-reply event streams: the generator writes events, any number of readers follow them.

A reply's events (`start`, `delta`..., then `done` or `error`) carry ids 1, 2, 3... in order. Readers
ask for the events after an id, so a client that lost its connection re-attaches with `Last-Event-ID`
and gets exactly what it missed, from any web process.

- With `REDIS_URL`: one Redis Stream per reply (`redis_streams.py`).
- Without Redis: the same in one process, in memory (`LocalReplyStreams`, here).

A live stream expires after `LIVE_STREAM_TTL_S` (a guard against a dead generator); a finished one
after `FINISHED_STREAM_TTL_S`, after which readers rebuild the reply from the database (see
`services/chat/following.py`). Stop requests travel the same way (`request_stop` / `stop_requested`),
because the process asked to stop a reply need not be the one generating it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

STREAM_KEY_PREFIX = "sorya:reply:"
STOP_KEY_PREFIX = "sorya:reply-stop:"
STOP_COUNTER_KEY = "sorya:reply-stops"
LIVE_STREAM_TTL_S = 6 * 3600
FINISHED_STREAM_TTL_S = 30 * 60
STOP_SIGNAL_TTL_S = 3600
# Blocking reads stay under the shared Redis client's 5 s socket timeout.
MAX_BLOCK_S = 3.0
TERMINAL_EVENTS = frozenset({"done", "error"})


@dataclass(frozen=True)
class StreamEvent:
    id: int
    name: str
    data: dict[str, Any]

    @property
    def is_terminal(self) -> bool:
        return self.name in TERMINAL_EVENTS

    def to_sse(self) -> str:
        """The event in the wire format of server-sent events."""
        return f"id: {self.id}\nevent: {self.name}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"



class ReplyStreams:
    """The interface both implementations keep."""

    def start(self, message_id: int, event: StreamEvent) -> None:
        """Begin a new reply's stream with its first event, replacing whatever is stored under its id.

        The database has just handed out `message_id`, so anything the store holds under it (events, a
        stop flag) belongs to a reply of an earlier database that had the same id: one rebuilt, or
        restored from a backup, while the store kept its streams (a finished stream stays
        `FINISHED_STREAM_TTL_S`, a stop flag `STOP_SIGNAL_TTL_S`). Appended to instead, the new `start`
        would be refused, a reader would take the old reply's `done` for this one's end, and the old
        stop flag would stop the new reply.
        """
        raise NotImplementedError

    def publish(self, message_id: int, event: StreamEvent) -> bool:
        """Append `event`; returns False (and writes nothing) when its id is not after the last one."""
        raise NotImplementedError

    def publish_soon(self, message_id: int, event: StreamEvent) -> None:
        """Append `event` without waiting for the store (deltas); `flush` before the reply's last event."""
        self.publish(message_id, event)

    def flush(self) -> None:
        """Wait until every `publish_soon` of this process so far has been written."""

    def read(self, message_id: int, after_id: int, timeout_s: float) -> list[StreamEvent]:
        """The events after `after_id`, waiting up to `timeout_s` for at least one (may return [])."""
        raise NotImplementedError

    def last_event(self, message_id: int) -> StreamEvent | None:
        """The stream's latest event, or None when it has none (or has expired)."""
        raise NotImplementedError

    def finish(self, message_id: int) -> None:
        """The reply has ended: keep its events for `FINISHED_STREAM_TTL_S`, then forget them."""
        raise NotImplementedError

    def request_stop(self, message_id: int) -> None:
        raise NotImplementedError

    def stop_requested(self, message_ids: list[int]) -> set[int]:
        raise NotImplementedError



@dataclass
class _LocalStream:
    events: list[StreamEvent]
    expires_at: float


class LocalReplyStreams(ReplyStreams):
    """The in-process broker of the embedded default (one web process, no Redis)."""

    def __init__(self) -> None:
        self._streams: dict[int, _LocalStream] = {}
        self._stops: dict[int, float] = {}
        self._changed = threading.Condition()

    def start(self, message_id: int, event: StreamEvent) -> None:
        now = time.monotonic()
        with self._changed:
            self._forget_expired(now)
            self._streams[message_id] = _LocalStream([event], now + LIVE_STREAM_TTL_S)
            self._stops.pop(message_id, None)
            self._changed.notify_all()

    def publish(self, message_id: int, event: StreamEvent) -> bool:
        now = time.monotonic()
        with self._changed:
            stream = self._streams.get(message_id)
            if stream is None:
                self._forget_expired(now)
                stream = self._streams[message_id] = _LocalStream([], now + LIVE_STREAM_TTL_S)
            if stream.events and event.id <= stream.events[-1].id:
                return False
            stream.events.append(event)
            self._changed.notify_all()
        return True

    def read(self, message_id: int, after_id: int, timeout_s: float) -> list[StreamEvent]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                stream = self._streams.get(message_id)
                if stream is not None and stream.events and stream.events[-1].id > after_id:
                    return [e for e in stream.events if e.id > after_id]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._changed.wait(remaining)

    def last_event(self, message_id: int) -> StreamEvent | None:
        with self._changed:
            stream = self._streams.get(message_id)
            return stream.events[-1] if stream is not None and stream.events else None

    def finish(self, message_id: int) -> None:
        with self._changed:
            stream = self._streams.get(message_id)
            if stream is not None:
                stream.expires_at = time.monotonic() + FINISHED_STREAM_TTL_S
            self._stops.pop(message_id, None)

    def request_stop(self, message_id: int) -> None:
        with self._changed:
            self._stops[message_id] = time.monotonic() + STOP_SIGNAL_TTL_S

    def stop_requested(self, message_ids: list[int]) -> set[int]:
        with self._changed:
            return {mid for mid in message_ids if mid in self._stops}

    def _forget_expired(self, now: float) -> None:
        for message_id in [mid for mid, s in self._streams.items() if s.expires_at < now]:
            del self._streams[message_id]
        for message_id in [mid for mid, until in self._stops.items() if until < now]:
            del self._stops[message_id]


_local_streams = LocalReplyStreams()


def streams_for(redis_client: redis.Redis | None) -> ReplyStreams:
    """Redis Streams when Redis is configured, else this process's in-memory broker."""
    if redis_client is None:
        return _local_streams
    # Imported here: the embedded default (no Redis) never loads the Redis client library.
    from app.runtime.redis_streams import RedisReplyStreams, one_per_client

    # One store per client: the supervisor polls stops once per store for all of its replies.
    return one_per_client(RedisReplyStreams, redis_client)
