"""The per-process Redis fan-out and publisher behind reply streams: exact ids whatever the order in
which readers attach, batched writes that keep each reply's order."""

from __future__ import annotations

import threading

import pytest
import redis

from app.runtime.redis_streams import RedisFanout, RedisPublisher, RedisReplyStreams
from app.runtime.streams import StreamEvent


@pytest.fixture
def client(redis_url):
    connection = redis.Redis.from_url(redis_url, socket_timeout=5)
    connection.flushdb()
    yield connection
    connection.flushdb()


def delta(event_id: int) -> StreamEvent:
    return StreamEvent(event_id, "delta", {"text": f"t{event_id} "})


def ids(events) -> list[int]:
    return [e.id for e in events]


def test_readers_attaching_at_any_id_get_exactly_the_events_after_it(client):
    streams = RedisReplyStreams(client)
    fanout = RedisFanout(client)
    for event_id in range(1, 6):
        streams.publish(7, delta(event_id))
    assert ids(fanout.read(7, 3, timeout_s=2)) == [4, 5]
    # Older than what the subscription holds: the gap is fetched and prepended, nothing repeated.
    assert ids(fanout.read(7, 1, timeout_s=2)) == [2, 3, 4, 5]
    assert ids(fanout.read(7, 0, timeout_s=2)) == [1, 2, 3, 4, 5]
    assert fanout.read(7, 5, timeout_s=0.2) == []


def test_a_waiting_reader_is_woken_by_a_new_event_and_a_second_reply_joins_the_same_loop(client):
    streams = RedisReplyStreams(client)
    fanout = RedisFanout(client)
    streams.publish(8, delta(1))
    assert ids(fanout.read(8, 0, timeout_s=2)) == [1]
    got: dict[int, list[int]] = {}

    def follow(message_id: int, after_id: int) -> None:
        got[message_id] = ids(fanout.read(message_id, after_id, timeout_s=3))

    readers = [threading.Thread(target=follow, args=(8, 1)), threading.Thread(target=follow, args=(9, 0))]
    for reader in readers:
        reader.start()
    streams.publish(9, delta(1))
    streams.publish(8, delta(2))
    for reader in readers:
        reader.join(5)
    assert got == {8: [2], 9: [1]}


def test_an_ended_reply_is_read_from_redis_again_after_its_end(client):
    streams = RedisReplyStreams(client)
    fanout = RedisFanout(client)
    streams.publish(10, delta(1))
    streams.publish(10, StreamEvent(2, "done", {"message_id": 10}))
    assert ids(fanout.read(10, 0, timeout_s=2)) == [1, 2]
    client.delete(RedisReplyStreams.key(10))  # expired: the fan-out keeps no stale copy of it
    assert fanout.read(10, 0, timeout_s=0.3) == []


def test_the_publisher_writes_each_replys_events_in_order_and_flush_waits_for_them(client):
    publisher = RedisPublisher(client)
    streams = RedisReplyStreams(client)
    for event_id in range(1, 40):
        publisher.enqueue(11, delta(event_id))
        publisher.enqueue(12, delta(event_id))
    publisher.flush()
    assert ids(streams.read_now(11, 0)) == list(range(1, 40))
    assert ids(streams.read_now(12, 0)) == list(range(1, 40))
    assert client.ttl(RedisReplyStreams.key(11)) > 0  # the first event set the live stream's expiry


class CountingPipeline(redis.client.Pipeline):
    def mget(self, keys, *args):
        CountingRedis.flags_read += len(keys)
        return super().mget(keys, *args)


class CountingRedis(redis.Redis):
    """A client that counts the stop flags it reads (MGET keys), to show which polls read them."""

    flags_read = 0

    def mget(self, keys, *args):
        CountingRedis.flags_read += len(keys)
        return super().mget(keys, *args)

    def pipeline(self, transaction=True, shard_hint=None):
        return CountingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def test_stop_polls_read_flags_only_for_new_replies_or_after_a_stop_request(client, redis_url):
    from app.runtime.redis_streams import _StopWatch

    watcher = CountingRedis.from_url(redis_url)
    watch = _StopWatch(watcher)
    stopper = RedisReplyStreams(client)
    stopper.request_stop(3)  # before the watch has ever seen reply 3: still found
    assert watch.flagged([1, 2, 3]) == {3}
    CountingRedis.flags_read = 0
    assert watch.flagged([1, 2]) == set()
    assert watch.flagged([1, 2]) == set()
    assert CountingRedis.flags_read == 0  # nothing moved: no flag read
    assert watch.flagged([1, 2, 4]) == set()
    assert CountingRedis.flags_read == 1  # only the new reply's
    stopper.request_stop(2)
    assert watch.flagged([1, 2, 4]) == {2}  # a stop request makes the next poll read every flag
    assert watch.flagged([1, 4]) == set()


class CountingPollPipeline(CountingPipeline):
    executed = 0

    def execute(self, raise_on_error=True):
        CountingPollPipeline.executed += 1
        return super().execute(raise_on_error)


class CountingPollRedis(CountingRedis):
    def pipeline(self, transaction=True, shard_hint=None):
        return CountingPollPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def test_one_stop_poll_serves_every_reply_a_process_generates(redis_url):
    """Each reply gets its store from `streams_for`; the supervisor's pass must still read the stop
    counter once for all of them, not once per reply (hundreds of round trips a second under load)."""
    from types import SimpleNamespace

    from app.runtime.streams import streams_for
    from app.services.chat import Generation, GenerationRegistry

    connection = CountingPollRedis.from_url(redis_url)
    connection.flushdb()
    generations = [
        Generation(job=SimpleNamespace(message_id=100 + n), streams=streams_for(connection), app=None)
        for n in range(30)
    ]
    GenerationRegistry._poll_stops(generations)  # first sight of these replies: their flags are read
    CountingPollPipeline.executed = 0
    for _ in range(3):
        GenerationRegistry._poll_stops(generations)
    assert CountingPollPipeline.executed == 3
    streams_for(connection).request_stop(117)
    GenerationRegistry._poll_stops(generations)
    assert [g.job.message_id for g in generations if g.cancel.is_set()] == [117]
    connection.flushdb()
