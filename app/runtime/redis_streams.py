"""Reply streams in Redis, shared by every web process: one Redis Stream per reply
(`sorya:reply:<message_id>`), entries added with the explicit ids `<n>-0` (so Redis itself refuses a
duplicate or out-of-order id).

A process follows and writes many replies at once over one connection pool: it reads all the replies it
follows with one blocking `XREAD` (`RedisFanout`), writes deltas through one batching publisher
(`RedisPublisher`) and polls stop flags through one counter (`_StopWatch`), so Redis round trips do not
grow with readers x deltas.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from app.runtime.streams import (
    FINISHED_STREAM_TTL_S,
    LIVE_STREAM_TTL_S,
    MAX_BLOCK_S,
    STOP_COUNTER_KEY,
    STOP_KEY_PREFIX,
    STOP_SIGNAL_TTL_S,
    STREAM_KEY_PREFIX,
    ReplyStreams,
    StreamEvent,
)

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)
T = TypeVar("T")


class RedisReplyStreams(ReplyStreams):
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @staticmethod
    def key(message_id: int) -> str:
        return f"{STREAM_KEY_PREFIX}{message_id}"

    def start(self, message_id: int, event: StreamEvent) -> None:
        key = self.key(message_id)
        # One MULTI: no reader sees the id without a stream, or the new `start` beside the old events.
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key, f"{STOP_KEY_PREFIX}{message_id}")
        pipe.xadd(key, {"e": event.name, "d": json.dumps(event.data, separators=(",", ":"))}, id=f"{event.id}-0")
        pipe.expire(key, LIVE_STREAM_TTL_S)
        pipe.execute()
        # A reader of this process may still follow the old stream: its subscription holds the old events.
        _fanout_for(self.client).forget(message_id)

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

    def publish_soon(self, message_id: int, event: StreamEvent) -> None:
        _publisher_for(self.client).enqueue(message_id, event)

    def flush(self) -> None:
        _publisher_for(self.client).flush()

    def read(self, message_id: int, after_id: int, timeout_s: float) -> list[StreamEvent]:
        if timeout_s < FANOUT_MIN_TIMEOUT_S:
            return self.read_now(message_id, after_id)  # a one-off look (the sweep): no subscription
        return _fanout_for(self.client).read(message_id, after_id, timeout_s)

    def read_now(self, message_id: int, after_id: int) -> list[StreamEvent]:
        """The events after `after_id`, straight from Redis, without waiting."""
        entries = self.client.xrange(self.key(message_id), min=f"{after_id + 1}-0")
        return [self._event(entry_id, fields) for entry_id, fields in entries]

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
        pipe = self.client.pipeline(transaction=False)
        pipe.set(f"{STOP_KEY_PREFIX}{message_id}", b"1", ex=STOP_SIGNAL_TTL_S)
        pipe.incr(STOP_COUNTER_KEY)  # after the flag: a reader that sees the new count sees the flag
        pipe.execute()

    def stop_requested(self, message_ids: list[int]) -> set[int]:
        return _stop_watch_for(self.client).flagged(message_ids)


class _StopWatch:
    """Which replies have a stop flag, polled several times a second by each generating process.

    Reading every active reply's flag at each poll costs a key per reply; instead a counter that every
    stop request increments is read, and the flags are read only when it moved, or for replies not
    checked since it last did. A stop that lands between the two reads moves the counter again, so it
    is seen at the next poll.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._count: bytes | None = None
        self._checked: set[int] = set()

    def flagged(self, message_ids: list[int]) -> set[int]:
        if not message_ids:
            return set()
        with self._lock:
            unchecked = [mid for mid in message_ids if mid not in self._checked]
            pipe = self.client.pipeline(transaction=False)
            pipe.get(STOP_COUNTER_KEY)
            if unchecked:
                pipe.mget([f"{STOP_KEY_PREFIX}{mid}" for mid in unchecked])
            count, *values = pipe.execute()
            if count == self._count:
                wanted, flags = unchecked, (values[0] if values else [])
            else:
                wanted = message_ids
                flags = self.client.mget([f"{STOP_KEY_PREFIX}{mid}" for mid in message_ids])
                self._count = count
            self._checked = set(message_ids)
            return {mid for mid, value in zip(wanted, flags, strict=True) if value}


def _stop_watch_for(client: redis.Redis) -> _StopWatch:
    return one_per_client(_StopWatch, client)


# -- one Redis reader per process, for every reply followed in it ------------------------------------

# Reads shorter than this go straight to Redis (a look, not a follow).
FANOUT_MIN_TIMEOUT_S = 0.05
# A reply nobody has read for this long is dropped from the fan-out (readers come back every few seconds).
FANOUT_LINGER_S = 10.0
# After a read that returned events, the fan-out waits this long per followed stream (up to the max)
# before the next one, so each read carries many replies' events: with hundreds of streams, reading as
# soon as any one has an event costs a round trip (and the packing of every key) per event. One stream
# waits half a millisecond; a hundred, 50 ms, well under the coalescing window of that many replies.
FANOUT_PACE_PER_STREAM_S = 0.0005
FANOUT_PACE_MAX_S = 0.05
WAKE_KEY_PREFIX = "sorya:fanout-wake:"


class _Subscription:
    """The events of one reply after `base`, as fetched so far (contiguous: ids base+1 .. cursor)."""

    def __init__(self, base: int, lock: threading.Lock) -> None:
        self.base = base
        self.cursor = base
        self.events: list[StreamEvent] = []
        self.changed = threading.Condition(lock)
        self.last_used = time.monotonic()

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].is_terminal

    def after(self, after_id: int) -> list[StreamEvent]:
        if not self.events or self.events[-1].id <= after_id:
            return []
        return [e for e in self.events if e.id > after_id]


class RedisFanout:
    """Follows every reply read in this process with one blocking `XREAD` over all their streams.

    A reader per SSE connection issuing its own `XREAD` costs a Redis round trip per reader per
    delta; here one loop (a thread, a greenlet under gevent) reads all the streams followed in the
    process at once and hands each reader its events from memory. A new subscription wakes the loop
    through a per-process wake stream, so it is included at once rather than after the current block.
    Ids and order are Redis's own, so `Last-Event-ID` resumes stay exact.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._subs: dict[int, _Subscription] = {}
        self._blocking = False
        self._has_work = threading.Condition(self._lock)
        self._wake_key = f"{WAKE_KEY_PREFIX}{uuid.uuid4().hex}"
        self._wake_cursor = "0-0"
        self._thread: threading.Thread | None = None

    def read(self, message_id: int, after_id: int, timeout_s: float) -> list[StreamEvent]:
        deadline = time.monotonic() + timeout_s
        sub = self._subscription(message_id, after_id)
        with self._lock:
            while True:
                sub.last_used = time.monotonic()
                events = sub.after(after_id)
                remaining = deadline - time.monotonic()
                if events or remaining <= 0 or self._subs.get(message_id) is not sub:
                    return events
                sub.changed.wait(remaining)

    def forget(self, message_id: int) -> None:
        """Drop the reply's subscription (its readers get nothing more from it; the next read subscribes anew)."""
        with self._lock:
            sub = self._subs.pop(message_id, None)
            if sub is not None:
                sub.changed.notify_all()

    def _subscription(self, message_id: int, after_id: int) -> _Subscription:
        """The reply's subscription, covering the events after `after_id` (earlier ones fetched now)."""
        wake = False
        with self._lock:
            self._ensure_loop()
            sub = self._subs.get(message_id)
            if sub is None:
                sub = self._subs[message_id] = _Subscription(after_id, self._lock)
                wake = self._blocking
                self._has_work.notify_all()
            covered = sub.base <= after_id
            base = sub.base
        if wake:
            pipe = self.client.pipeline(transaction=False)
            pipe.xadd(self._wake_key, {"w": b"1"}, maxlen=16, approximate=True)
            pipe.expire(self._wake_key, LIVE_STREAM_TTL_S)
            pipe.execute()
        if covered:
            return sub
        # A reader resuming from before what the subscription holds: fetch the gap, then prepend it.
        entries = self.client.xrange(RedisReplyStreams.key(message_id), min=f"{after_id + 1}-0", max=f"{base}-0")
        gap = [RedisReplyStreams._event(entry_id, fields) for entry_id, fields in entries]
        with self._lock:
            if sub.base > after_id:
                sub.events = [e for e in gap if after_id < e.id <= sub.base] + sub.events
                sub.base = after_id
        return sub

    def _ensure_loop(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="reply-fanout", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                if not self._pass():
                    return
            except Exception:  # noqa: BLE001 - the loop must outlive a Redis hiccup; readers retry
                log.exception("streams: fan-out read failed")
                time.sleep(0.2)

    def _pass(self) -> bool:
        """One blocking read over every followed stream; False when the loop has been idle and ended."""
        with self._lock:
            now = time.monotonic()
            for message_id, sub in list(self._subs.items()):
                if now - sub.last_used > FANOUT_LINGER_S:
                    del self._subs[message_id]
                    sub.changed.notify_all()
            wanted = {RedisReplyStreams.key(mid): f"{sub.cursor}-0" for mid, sub in self._subs.items()
                      if not sub.ended}
            if not wanted:
                if not self._has_work.wait(FANOUT_LINGER_S) and not self._subs:
                    self._thread = None  # idle: the next subscription starts a new loop
                    return False
                return True
            wanted[self._wake_key] = self._wake_cursor
            self._blocking = True
        try:
            answer = self.client.xread(wanted, block=int(MAX_BLOCK_S * 1000))
        finally:
            with self._lock:
                self._blocking = False
        with self._lock:
            for raw_key, entries in answer or []:
                key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                if key == self._wake_key:
                    last = entries[-1][0]
                    self._wake_cursor = last.decode() if isinstance(last, bytes) else last
                    continue
                sub_id = int(key[len(STREAM_KEY_PREFIX):])
                sub = self._subs.get(sub_id)
                if sub is None:
                    continue
                for entry_id, fields in entries:
                    event = RedisReplyStreams._event(entry_id, fields)
                    if event.id > sub.cursor:
                        sub.events.append(event)
                        sub.cursor = event.id
                sub.changed.notify_all()
                if sub.ended:
                    # The readers waiting now take their events from the object they hold; a later
                    # read goes to Redis again, which stays the one truth for an ended reply's events.
                    del self._subs[sub_id]
        if answer:
            time.sleep(fanout_pace_s(len(wanted) - 1))
        return True


def fanout_pace_s(followed: int) -> float:
    """How long the fan-out waits after a read with events, when it follows `followed` streams."""
    return min(FANOUT_PACE_MAX_S, FANOUT_PACE_PER_STREAM_S * followed)


class RedisPublisher:
    """Writes this process's deltas to Redis in batches: one pipelined round trip carries every event
    queued while the previous one was in flight (alone, an event goes out at once, so a lightly loaded
    process adds no delay). Events of one reply keep their order; `flush` is the barrier before a
    reply's terminal event, which is written directly."""

    MAX_ATTEMPTS = 3

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)
        self._written = threading.Condition(self._lock)
        self._queue: list[tuple[int, StreamEvent]] = []
        self._enqueued = 0  # events ever queued
        self._done = 0  # events ever written (or given up on)
        self._thread: threading.Thread | None = None

    def enqueue(self, message_id: int, event: StreamEvent) -> None:
        with self._lock:
            self._queue.append((message_id, event))
            self._enqueued += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="reply-publisher", daemon=True)
                self._thread.start()
            self._queued.notify()

    def flush(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            target = self._enqueued
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("streams: events still unwritten after %.1fs", timeout_s)
                    return
                self._written.wait(remaining)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue and not self._queued.wait(FANOUT_LINGER_S) and not self._queue:
                    self._thread = None  # idle: the next event starts a new loop
                    return
                batch, self._queue = self._queue, []
            self._write(batch)
            with self._lock:
                self._done += len(batch)
                self._written.notify_all()

    def _write(self, batch: list[tuple[int, StreamEvent]]) -> None:
        import redis

        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            pipe = self.client.pipeline(transaction=False)
            for message_id, event in batch:
                key = RedisReplyStreams.key(message_id)
                pipe.xadd(key, {"e": event.name, "d": json.dumps(event.data, separators=(",", ":"))},
                          id=f"{event.id}-0")
                if event.id == 1:
                    pipe.expire(key, LIVE_STREAM_TTL_S)
            try:
                results = pipe.execute(raise_on_error=False)
            except redis.RedisError:
                if attempt == self.MAX_ATTEMPTS:
                    log.exception("streams: %s events could not be written", len(batch))
                    return
                time.sleep(0.1 * attempt)
                continue
            for result in results:
                if isinstance(result, Exception):
                    # An id already written (see `publish`): the first writer wins.
                    log.info("streams: an event was not written: %s", result)
            return


# The per-process helpers of each Redis client (per process and configuration): its fan-out, publisher
# and stop watch, each created on first use.
_per_client: dict[tuple[type, int], Any] = {}
_per_client_lock = threading.Lock()


def one_per_client(kind: type[T], client: redis.Redis) -> T:
    with _per_client_lock:
        helper = _per_client.get((kind, id(client)))
        if helper is None or helper.client is not client:
            helper = _per_client[(kind, id(client))] = kind(client)
        return helper


def _publisher_for(client: redis.Redis) -> RedisPublisher:
    return one_per_client(RedisPublisher, client)


def _fanout_for(client: redis.Redis) -> RedisFanout:
    return one_per_client(RedisFanout, client)
