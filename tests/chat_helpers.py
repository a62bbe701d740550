"""Helpers shared by the chat tests: reading the contract's event stream, sending, waiting."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from tests.conftest import csrf_token_for


@dataclass
class Event:
    id: int
    name: str
    data: dict[str, Any]


def parse_sse(text: str) -> list[Event]:
    """Events of a server-sent event stream (comments and `retry:` lines skipped)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append(Event(int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


class SSEReader:
    """Reads a streamed test-client response event by event, so a test can stop half-way."""

    def __init__(self, response) -> None:
        self.response = response
        self.chunks = response.iter_encoded()
        self.buffer = ""

    def next_event(self) -> Event | None:
        while "\n\n" not in self.buffer or not parse_sse(self.buffer.split("\n\n", 1)[0] + "\n\n"):
            if "\n\n" in self.buffer:  # a comment or retry line: drop it
                self.buffer = self.buffer.split("\n\n", 1)[1]
                continue
            try:
                self.buffer += next(self.chunks).decode()
            except StopIteration:
                return None
        block, self.buffer = self.buffer.split("\n\n", 1)
        return parse_sse(block + "\n\n")[0]

    def read_all(self) -> list[Event]:
        events = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        self.response.close()


def reply_text(events: list[Event]) -> str:
    return "".join(e.data["text"] for e in events if e.name == "delta")


def api_headers(client, *, stream: bool = False) -> dict[str, str]:
    headers = {"X-CSRFToken": csrf_token_for(client)}
    if stream:
        headers["Accept"] = "text/event-stream"
    return headers


def post_chat(client, body: dict[str, Any], *, stream: bool = False, headers: dict[str, str] | None = None):
    return client.post("/api/chat", json=body, headers=headers or api_headers(client, stream=stream), buffered=False)


def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError("condition not met in time")


# -- the two stream stores ------------------------------------------------------------------------------
# Sending, waiting and following a reply go through Redis Streams when REDIS_URL is set and through the
# in-process broker otherwise: tests of the waiting paths run on both (`parametrize("app", STREAM_STORES,
# indirect=True)` with a module's `app` fixture built by `app_on_stream_store`).
STREAM_STORES = ("redis", "in-process")


def app_on_stream_store(store: str, session_app, app_config, instance_dir: str) -> Iterator[Any]:
    """The session's app (Redis) for "redis"; for "in-process", an app on the same database without Redis."""
    if store == "redis":
        yield session_app
        return
    from app import create_app
    from app.extensions import db

    application = create_app(replace(app_config, REDIS_URL=None, INSTANCE_DIR=instance_dir))
    assert application.extensions["sorya.config"].REDIS_URL is None
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def leave_stale_streams_at_the_next_ids(app, user_id: int) -> list[int]:
    """The stream store as a database rebuilt or restored from a backup leaves it: finished streams, and
    stop flags, under the message ids the database hands out next (ids start again where the data ends,
    while the store still holds the replies that had them). Returns those ids."""
    from app import runtime
    from app.extensions import db
    from app.models import ChatMessage
    from app.runtime.streams import StreamEvent, streams_for

    with app.app_context():
        probe = ChatMessage(user_id=user_id, role="user", content="probe", status="complete")
        db.session.add(probe)
        db.session.commit()
        first_id = probe.id
        db.session.delete(probe)
        db.session.commit()
        streams = streams_for(runtime.redis_client())
        ids = list(range(first_id, first_id + 3))
        for message_id in ids:
            streams.publish(message_id, StreamEvent(1, "start", {"user_message_id": 0, "message_id": message_id}))
            streams.publish(message_id, StreamEvent(2, "delta", {"text": "A reply from the old database."}))
            streams.publish(message_id, StreamEvent(3, "done", {"message_id": message_id, "cost": 1}))
            streams.finish(message_id)
            streams.request_stop(message_id)
        db.session.remove()
    return ids
