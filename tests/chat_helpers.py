"""Helpers shared by the chat tests: reading the contract's event stream, sending, waiting."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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
