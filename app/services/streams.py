"""Per-reply event streams: the generator writes events, any number of readers follow them.

A reply's events (`start`, `delta`..., then `done` or `error`) carry ids 1, 2, 3... in order. Readers
ask for the events after an id, so a client that lost its connection re-attaches with `Last-Event-ID`
and gets exactly what it missed, from any web process.

- With `REDIS_URL`: one Redis Stream per reply (`sorya:reply:<message_id>`), entries added with the
  explicit ids `<n>-0` (so Redis itself refuses a duplicate or out-of-order id) and read with a
  blocking `XREAD`. A live stream expires after `LIVE_STREAM_TTL_S` (a guard against a dead
  generator); a finished one after `FINISHED_STREAM_TTL_S`, after which readers rebuild the reply
  from the database (see `services/chat.py`).
- Without Redis: the same in one process, in memory (`LocalReplyStreams`).

Stop requests travel the same way (`request_stop` / `stop_requested`), because the process asked to
stop a reply need not be the one generating it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

STREAM_KEY_PREFIX = "sorya:reply:"
STOP_KEY_PREFIX = "sorya:reply-stop:"
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


def coalesce_deltas(events: list[StreamEvent]) -> list[StreamEvent]:
    """Merge runs of consecutive `delta` events into one carrying the last id (fewer writes to a
    client; a reconnect from that id still resumes exactly after the merged text)."""
    merged: list[StreamEvent] = []
    for event in events:
        previous = merged[-1] if merged else None
        if event.name == "delta" and previous is not None and previous.name == "delta":
            merged[-1] = StreamEvent(event.id, "delta", {"text": previous.data["text"] + event.data["text"]})
        else:
            merged.append(event)
    return merged


class ReplyStreams:
    """The interface both implementations keep."""

    def publish(self, message_id: int, event: StreamEvent) -> bool:
        """Append `event`; returns False (and writes nothing) when its id is not after the last one."""
        raise NotImplementedError

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


class RedisReplyStreams(ReplyStreams):
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @staticmethod
    def key(message_id: int) -> str:
        return f"{STREAM_KEY_PREFIX}{message_id}"

    def publish(self, message_id: int, event: StreamEvent) -> bool:
        import redis

        key = self.key(message_id)
        fields = {"e": event.name, "d": json.dumps(event.data, separators=(",", ":"))}
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(key, fields, id=f"{event.id}-0")
        if event.id == 1:
            pipe.expire(key, LIVE_STREAM_TTL_S)
        try:
            pipe.execute()
        except redis.ResponseError as exc:
            # "equal or smaller than the target stream top item": this id was already written (a sweep
            # and a late generator both ending the same reply). The first writer wins.
            log.info("streams: event %s of reply %s not written: %s", event.id, message_id, exc)
            return False
        return True

    def read(self, message_id: int, after_id: int, timeout_s: float) -> list[StreamEvent]:
        block_ms = max(1, int(min(timeout_s, MAX_BLOCK_S) * 1000))
        answer = self.client.xread({self.key(message_id): f"{after_id}-0"}, block=block_ms)
        return [self._event(entry_id, fields) for _key, entries in answer or [] for entry_id, fields in entries]

    def last_event(self, message_id: int) -> StreamEvent | None:
        entries = self.client.xrevrange(self.key(message_id), count=1)
        return self._event(*entries[0]) if entries else None

    @staticmethod
    def _event(entry_id: bytes | str, fields: dict) -> StreamEvent:
        raw_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        name = fields[b"e"].decode() if b"e" in fields else fields["e"]
        data = fields[b"d"] if b"d" in fields else fields["d"]
        return StreamEvent(int(raw_id.split("-", 1)[0]), name, json.loads(data))

    def finish(self, message_id: int) -> None:
        self.client.expire(self.key(message_id), FINISHED_STREAM_TTL_S)

    def request_stop(self, message_id: int) -> None:
        self.client.set(f"{STOP_KEY_PREFIX}{message_id}", b"1", ex=STOP_SIGNAL_TTL_S)

    def stop_requested(self, message_ids: list[int]) -> set[int]:
        if not message_ids:
            return set()
        values = self.client.mget([f"{STOP_KEY_PREFIX}{mid}" for mid in message_ids])
        return {mid for mid, value in zip(message_ids, values, strict=True) if value}


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
    return RedisReplyStreams(redis_client)
