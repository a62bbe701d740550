"""A send is one transaction: the person's message, the pending reply, the reply's hold and the project's
activity are committed together, once, or not at all. On both engines (money rules must not rest on
MariaDB's row locks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select

from app.extensions import db
from app.models import ChatMessage, CreditHold
from app.services import chat as chat_service
from app.services.chat import sending
from tests.chat_helpers import post_chat, wait_for
from tests.conftest import sign_in
from tests.snapshot_helpers import make_project


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


@contextmanager
def commits_of_this_thread(engine) -> Any:
    """How many COMMITs this thread sends through `engine` inside the block (the reply's generation
    runs on a thread of its own and is not counted)."""
    me, commits = threading.get_ident(), []

    def record(connection) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
        if threading.get_ident() == me:
            commits.append(connection)

    event.listen(engine, "commit", record)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", record)


@pytest.fixture
def send_commits(app, monkeypatch) -> list:
    """The COMMITs sent while `send_message` runs, for every send of the test."""
    counted: list = []
    real_send: Callable[..., Any] = chat_service.send_message

    def counting_send(*args: Any, **kwargs: Any):
        with commits_of_this_thread(db.engine) as commits:
            try:
                return real_send(*args, **kwargs)
            finally:
                counted.extend(commits)

    monkeypatch.setattr(chat_service, "send_message", counting_send)
    return counted


def rows(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def test_a_send_to_a_project_commits_its_messages_hold_and_activity_once(
    app, client, make_user, openai_emulator, send_commits
):
    user = make_user("writer", balance=5000)
    project_id = make_project(app, user)
    sign_in(client, user)
    openai_emulator.control.script_reply("Done.", chunk_delay_ms=1)
    response = post_chat(client, {"message": "hi", "project_id": project_id})
    assert response.status_code == 200
    assert len(send_commits) == 1
    with app.app_context():
        assert rows(ChatMessage) == 2
        assert rows(CreditHold) == 1


def test_too_small_a_balance_is_402_with_no_message_and_no_hold(app, client, make_user, openai_emulator):
    poor = make_user("poor", balance=1)
    sign_in(client, poor)
    response = post_chat(client, {"message": "hi"})
    assert response.status_code == 402
    assert response.get_json()["error"]["code"] == "insufficient_credits"
    with app.app_context():
        assert rows(ChatMessage) == 0
        assert rows(CreditHold) == 0


def test_a_shortfall_when_the_hold_is_placed_commits_nothing(
    app, client, make_user, openai_emulator, monkeypatch, send_commits
):
    # The reply's room is sized from the locked balance, so the hold always fits it; here the sizing is
    # made to ask for the full room, so the hold itself falls short after both messages were flushed.
    monkeypatch.setattr(sending, "_affordable_completion_tokens", lambda available, prompt, price, wanted: wanted)
    user = make_user("short", balance=20)
    project_id = make_project(app, user)
    sign_in(client, user)
    response = post_chat(client, {"message": "hi", "project_id": project_id})
    assert response.status_code == 402
    assert send_commits == []
    assert [c for c in openai_emulator.control.calls() if c["path"] == "/v1/chat/completions"] == []
    with app.app_context():
        assert rows(ChatMessage) == 0
        assert rows(CreditHold) == 0


def test_a_send_whose_commit_fails_abandons_its_early_provider_request(
    app, client, make_user, openai_emulator, monkeypatch
):
    # The provider request goes out while the send commits (`StartGate`); when the commit fails, the
    # generation reads nothing, stores nothing, charges nothing and publishes nothing: the hold decides.
    from sqlalchemy.orm import Session

    from app.errors import Unavailable

    user = make_user("unlucky", balance=5000)
    sign_in(client, user)
    openai_emulator.control.script_reply("Never shown.", chunk_delay_ms=1)
    started: list[chat_service.Generation] = []
    real_start = chat_service.start_generation

    def recording_start(*args: Any, **kwargs: Any):
        started.append(real_start(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(chat_service, "start_generation", recording_start)
    me, real_commit = threading.get_ident(), Session.commit

    def failing_commit(self) -> None:  # noqa: ANN001
        if threading.get_ident() == me and started:
            self.rollback()
            raise Unavailable("The database went away.")
        real_commit(self)

    monkeypatch.setattr(Session, "commit", failing_commit)
    response = post_chat(client, {"message": "hi"})
    monkeypatch.setattr(Session, "commit", real_commit)
    assert response.status_code == 503
    assert len(started) == 1
    generation = started[0]
    wait_for(lambda: generation.finished)
    assert chat_service.GENERATIONS.wait_idle(10)
    assert generation.text == "" and generation.next_event_id == 2  # no delta, no terminal event
    with app.app_context():
        assert rows(ChatMessage) == 0
        assert rows(CreditHold) == 0


def test_a_send_starts_its_provider_request_before_it_commits(app, client, make_user, openai_emulator, monkeypatch):
    # The generation starts once the hold is placed, before the commit; the reply still streams in full.
    from tests.chat_helpers import parse_sse

    user = make_user("early", balance=5000)
    sign_in(client, user)
    openai_emulator.control.script_reply("Hello there.", chunk_delay_ms=1)
    order: list[str] = []
    real_start, real_send = chat_service.start_generation, chat_service.send_message

    def recording_start(*args: Any, **kwargs: Any):
        order.append("generation")
        return real_start(*args, **kwargs)

    def recording_send(*args: Any, **kwargs: Any):
        with commits_of_this_thread(db.engine) as commits:
            real_early = kwargs["start_early"]

            def early(job):  # noqa: ANN001
                order.append(f"early after {len(commits)} commits")
                return real_early(job)

            kwargs["start_early"] = early
            return real_send(*args, **kwargs)

    monkeypatch.setattr(chat_service, "start_generation", recording_start)
    monkeypatch.setattr(chat_service, "send_message", recording_send)
    response = post_chat(client, {"message": "hi"}, stream=True)
    events = parse_sse(response.get_data(as_text=True))
    assert order == ["early after 0 commits", "generation"]
    assert [e.name for e in events][0] == "start" and events[-1].name == "done"
    assert "".join(e.data["text"] for e in events if e.name == "delta") == "Hello there."
