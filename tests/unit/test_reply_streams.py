"""Reply streams: ordered ids, reads after an id, waiting, duplicates refused, stop flags (both brokers)."""

import threading

import pytest
import redis

from app.runtime.redis_streams import RedisReplyStreams
from app.runtime.streams import LocalReplyStreams, StreamEvent
from tests.conftest import DEFAULT_TEST_REDIS_URL


@pytest.fixture(params=["local", "redis"])
def streams(request, redis_url):
    if request.param == "local":
        yield LocalReplyStreams()
        return
    client = redis.Redis.from_url(redis_url or DEFAULT_TEST_REDIS_URL)
    client.flushdb()
    yield RedisReplyStreams(client)
    client.flushdb()


def delta(event_id, text):
    return StreamEvent(event_id, "delta", {"text": text})


def test_reads_return_exactly_the_events_after_an_id(streams):
    for event_id, text in enumerate(["a", "b", "c"], start=1):
        assert streams.publish(7, delta(event_id, text))
    assert [e.id for e in streams.read(7, 0, timeout_s=0.01)] == [1, 2, 3]
    assert [e.data["text"] for e in streams.read(7, 2, timeout_s=0.01)] == ["c"]
    assert streams.read(7, 3, timeout_s=0.01) == []
    assert streams.read(8, 0, timeout_s=0.01) == []  # another reply's stream is separate
    assert streams.last_event(7).id == 3 and streams.last_event(8) is None


def test_a_repeated_or_older_id_is_refused(streams):
    assert streams.publish(1, delta(1, "a"))
    assert streams.publish(1, delta(2, "b"))
    assert not streams.publish(1, StreamEvent(2, "done", {}))
    assert [e.name for e in streams.read(1, 0, timeout_s=0.01)] == ["delta", "delta"]


def test_a_reader_waits_for_the_next_event(streams):
    streams.publish(3, delta(1, "a"))
    timer = threading.Timer(0.2, lambda: streams.publish(3, delta(2, "b")))
    timer.start()
    events = streams.read(3, 1, timeout_s=2.0)
    timer.join()
    assert [e.data["text"] for e in events] == ["b"]


def test_stop_flags(streams):
    assert streams.stop_requested([1, 2]) == set()
    streams.request_stop(2)
    assert streams.stop_requested([1, 2, 3]) == {2}
    assert streams.stop_requested([]) == set()


def test_sse_wire_format():
    assert StreamEvent(4, "delta", {"text": "hé\n"}).to_sse() == 'id: 4\nevent: delta\ndata: {"text":"h\\u00e9\\n"}\n\n'


def test_starting_a_reply_replaces_what_an_earlier_reply_with_its_id_left(streams):
    # A database rebuilt or restored from a backup hands out the id again; the store kept the old reply.
    streams.publish(5, StreamEvent(1, "start", {"message_id": 5, "user_message_id": 4}))
    streams.publish(5, delta(2, "the old reply"))
    streams.publish(5, StreamEvent(3, "done", {"cost": 7}))
    streams.finish(5)
    streams.request_stop(5)
    assert not streams.publish(5, StreamEvent(1, "start", {"message_id": 5, "user_message_id": 40}))

    streams.start(5, StreamEvent(1, "start", {"message_id": 5, "user_message_id": 40}))
    assert streams.read(5, 0, timeout_s=0.01) == [StreamEvent(1, "start", {"message_id": 5, "user_message_id": 40})]
    assert streams.last_event(5).name == "start"
    assert streams.stop_requested([5]) == set()
    assert streams.publish(5, delta(2, "the new reply"))
    assert [e.data.get("text") for e in streams.read(5, 1, timeout_s=0.01)] == ["the new reply"]
