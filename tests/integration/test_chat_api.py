"""Chat through the JSON API and its event stream, against the OpenAI emulator: replies, charges, failures."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.models import ChatMessage, CreditBalance, CreditHold, LedgerEntry, Project
from app.providers import openai_client
from app.services import chat as chat_service
from app.services.chat import generation as chat_generation
from app.services.chat.prompt import estimate_tokens
from app.services.credits import Price, reply_cost
from sandbox.emulators.openai_emulator import count_prompt_tokens, count_tokens
from tests.chat_helpers import (
    STREAM_STORES,
    SSEReader,
    api_headers,
    app_on_stream_store,
    leave_stale_streams_at_the_next_ids,
    post_chat,
    reply_text,
)
from tests.conftest import sign_in

PRICE = Price(10, 10)  # CREDITS_PER_1K_TOKENS in the test configuration, both directions
LONG_TEXT = " ".join(f"word{i}" for i in range(300))


@pytest.fixture
def app(request, app, app_config, tmp_path):
    """The session's app (Redis), or the same on the in-process broker for tests parametrised with it."""
    yield from app_on_stream_store(getattr(request, "param", "redis"), app, app_config, str(tmp_path))


def balance(db_session, user_id):
    db_session.expire_all()
    row = db_session.get(CreditBalance, user_id)
    return (row.balance, row.held)


def chat_entries(db_session, user_id):
    db_session.expire_all()
    return db_session.execute(
        select(LedgerEntry).where(LedgerEntry.user_id == user_id, LedgerEntry.reason == "chat")
    ).scalars().all()


def reply_row(db_session, message_id):
    db_session.expire_all()
    return db_session.get(ChatMessage, message_id)


def chat_calls(openai_emulator):
    return [c for c in openai_emulator.control.calls() if c["path"] == "/v1/chat/completions"]


def provider_cost(openai_emulator, text):
    """What the emulator reports as usage for the last request, priced: computed independently of Sorya."""
    body = openai_emulator.control.chat_requests()[-1]
    return reply_cost(count_prompt_tokens(body["messages"]), count_tokens(text), PRICE)


# -- happy paths -------------------------------------------------------------------------------------


def test_streamed_reply_has_the_contract_events_and_is_charged_by_provider_usage(
    client_for, user, openai_emulator, db_session
):
    openai_emulator.control.script_reply("Hello! Here is **the** answer you wanted.", chunk_delay_ms=5)
    response = post_chat(client_for, {"message": "Say hello"}, stream=True)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = SSEReader(response).read_all()

    assert [e.name for e in events][0] == "start" and events[-1].name == "done"
    assert all(e.name == "delta" for e in events[1:-1]) and len(events) >= 3
    ids = [e.id for e in events]
    assert ids == sorted(set(ids)) and ids[0] == 1
    start, done = events[0].data, events[-1].data
    assert reply_text(events) == "Hello! Here is **the** answer you wanted."

    expected_cost = provider_cost(openai_emulator, reply_text(events))
    assert done["message_id"] == start["message_id"]
    assert done["cost"] == expected_cost > 0
    assert done["balance"] == 5000 - expected_cost
    assert set(done) >= {"message_id", "tokens_in", "tokens_out", "cost", "balance"}

    row = reply_row(db_session, start["message_id"])
    assert (row.status, row.usage_source, row.content) == ("complete", "provider", reply_text(events))
    assert row.reply_to_id == start["user_message_id"]
    assert balance(db_session, user.id) == (5000 - expected_cost, 0)
    [entry] = chat_entries(db_session, user.id)
    assert entry.delta == -expected_cost and entry.model == "gpt-5"
    hold = db_session.get(CreditHold, row.hold_id)
    assert hold.status == "settled"


def test_a_settled_reply_meters_its_tokens_by_model_and_direction(client_for, openai_emulator, db_session):
    def metered(direction):
        return REGISTRY.get_sample_value("sorya_tokens_total", {"model": "gpt-5-mini", "direction": direction}) or 0

    before_in, before_out = metered("in"), metered("out")
    openai_emulator.control.script_reply("Counted reply.", chunk_delay_ms=1)
    events = SSEReader(post_chat(client_for, {"message": "count me", "model": "gpt-5-mini"}, stream=True)).read_all()
    row = reply_row(db_session, events[-1].data["message_id"])
    assert row.tokens_in > 0 and row.tokens_out > 0
    assert (metered("in") - before_in, metered("out") - before_out) == (row.tokens_in, row.tokens_out)


def test_a_deadlock_while_ending_a_reply_is_retried_not_left_hanging(
    client_for, user, openai_emulator, db_session, monkeypatch
):
    real_finish = chat_generation.finish_reply
    calls = []

    def deadlocks_once(session, **kwargs):
        calls.append(kwargs["message_id"])
        if len(calls) == 1:
            session.execute(select(ChatMessage.id).where(ChatMessage.id == kwargs["message_id"]).with_for_update())
            raise OperationalError("UPDATE chat_messages ...", {}, Exception(1213, "Deadlock found"))
        return real_finish(session, **kwargs)

    monkeypatch.setattr(chat_generation, "finish_reply", deadlocks_once)
    openai_emulator.control.script_reply("Survives a deadlock.", chunk_delay_ms=1)
    events = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True)).read_all()
    assert events[-1].name == "done" and reply_text(events) == "Survives a deadlock."
    assert len(calls) == 2
    row = reply_row(db_session, events[-1].data["message_id"])
    assert row.status == "complete" and row.cost == events[-1].data["cost"] > 0
    assert balance(db_session, user.id) == (5000 - row.cost, 0)


@pytest.mark.parametrize("app", STREAM_STORES, indirect=True)
def test_reply_without_streaming_answers_json_as_the_contract(client_for, user, openai_emulator, db_session):
    openai_emulator.control.script_reply("Plain JSON reply.")
    response = post_chat(client_for, {"message": "hello", "model": "gpt-5-mini"})
    assert response.status_code == 200
    body = response.get_json()
    message = body["message"]
    assert set(body) >= {"message", "user_message_id", "balance"}
    assert set(message) >= {"id", "role", "content", "model", "tokens_in", "tokens_out", "cost"}
    assert message["role"] == "assistant" and message["content"] == "Plain JSON reply."
    assert message["status"] == "complete" and message["usage_source"] == "provider"
    assert message["model"] == "gpt-5-mini"
    assert message["cost"] == provider_cost(openai_emulator, "Plain JSON reply.")
    assert body["balance"] == 5000 - message["cost"] == balance(db_session, user.id)[0]
    assert openai_emulator.control.chat_requests()[-1]["model"] == "gpt-5-mini"


@pytest.mark.parametrize("app", STREAM_STORES, indirect=True)
def test_a_slow_reply_without_streaming_is_answered_finished_and_charged(client_for, user, openai_emulator, db_session):
    text = " ".join(f"part{i}" for i in range(40))
    openai_emulator.control.script_reply(text, chunk_delay_ms=40)
    body = post_chat(client_for, {"message": "take your time"}).get_json()
    message = body["message"]
    assert (message["status"], message["content"]) == ("complete", text)
    assert message["cost"] == provider_cost(openai_emulator, text) > 0
    row = reply_row(db_session, message["id"])
    assert (row.status, row.cost) == ("complete", message["cost"])
    assert balance(db_session, user.id) == (body["balance"], 0) == (5000 - message["cost"], 0)


@pytest.mark.parametrize("app", STREAM_STORES, indirect=True)
def test_a_send_is_not_answered_from_a_stream_left_under_the_same_id_by_an_earlier_database(
    app, client_for, user, openai_emulator, db_session
):
    """A database rebuilt or restored from a backup hands out ids again that the stream store still holds
    (a finished reply's events stay 30 minutes, a stop flag an hour): the new reply's stream starts afresh."""
    stale_ids = leave_stale_streams_at_the_next_ids(app, user.id)
    openai_emulator.control.script_reply("A reply of this database.", chunk_delay_ms=20)
    body = post_chat(client_for, {"message": "hello again"}).get_json()
    message = body["message"]
    assert message["id"] in stale_ids
    assert (message["status"], message["content"]) == ("complete", "A reply of this database.")
    assert message["cost"] == provider_cost(openai_emulator, message["content"]) > 0
    assert balance(db_session, user.id) == (5000 - message["cost"], 0)
    events = SSEReader(client_for.get(f"/api/chat/{message['id']}/stream", buffered=False)).read_all()
    assert [e.name for e in events][0] == "start" and events[-1].name == "done"
    assert events[0].data["user_message_id"] == body["user_message_id"]
    assert reply_text(events) == "A reply of this database." and events[-1].data["cost"] == message["cost"]


@pytest.mark.parametrize("app", STREAM_STORES, indirect=True)
def test_credits_are_held_while_a_reply_streams_then_charged_at_its_end(client_for, user, openai_emulator):
    text = " ".join(f"slow{i}" for i in range(30))
    openai_emulator.control.script_reply(text, chunk_delay_ms=100)
    reader = SSEReader(post_chat(client_for, {"message": "slowly please"}, stream=True))
    assert reader.next_event().name == "start" and reader.next_event().name == "delta"
    during = client_for.get("/api/credits").get_json()
    assert during["balance"] == 5000 and during["held"] > 0
    rest = reader.read_all()
    assert rest[-1].name == "done"
    cost = rest[-1].data["cost"]
    assert 0 < cost <= during["held"]
    after = client_for.get("/api/credits").get_json()
    assert (after["balance"], after["held"]) == (5000 - cost, 0)


def test_the_provider_gets_the_system_prompt_history_and_streaming_options(client_for, openai_emulator):
    openai_emulator.control.script_reply("First answer.")
    openai_emulator.control.script_reply("Second answer.")
    post_chat(client_for, {"message": "first question"}).get_json()
    post_chat(client_for, {"message": "second question"}).get_json()
    body = openai_emulator.control.chat_requests()[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] > 0
    roles = [m["role"] for m in body["messages"]]
    contents = [m["content"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "path=" in contents[0]
    assert contents[1:] == ["first question", "First answer.", "second question"]


def test_a_stream_without_usage_is_charged_by_the_documented_estimate(client_for, user, openai_emulator, db_session):
    text = "An answer whose usage the provider never reports."
    openai_emulator.control.script_reply(text, omit_usage=True)
    events = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True)).read_all()
    done = events[-1].data
    row = reply_row(db_session, done["message_id"])
    assert row.usage_source == "estimate" and done["usage_source"] == "estimate"
    assert row.tokens_out == estimate_tokens(text)
    assert done["cost"] == reply_cost(row.tokens_in, estimate_tokens(text), PRICE)
    assert balance(db_session, user.id) == (5000 - done["cost"], 0)


# -- failures ----------------------------------------------------------------------------------------


def assert_nothing_charged(db_session, user_id, message_id):
    row = reply_row(db_session, message_id)
    assert row.cost == 0 and row.content == ""
    assert balance(db_session, user_id) == (5000, 0)
    assert chat_entries(db_session, user_id) == []
    assert db_session.get(CreditHold, row.hold_id).status == "released"
    return row


def test_provider_401_is_a_clear_error_logged_and_not_charged(client_for, user, openai_emulator, db_session, caplog):
    openai_emulator.control.revoke_key("sk-test-sorya")
    with caplog.at_level(logging.ERROR, logger="app.providers.openai_client"):
        events = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True)).read_all()
    error = events[-1]
    assert error.name == "error" and error.data["code"] == "upstream_error"
    assert "API key" in error.data["message"] and "not charged" in error.data["message"]
    assert any(r.levelno == logging.ERROR and "OPENAI_API_KEY" in r.getMessage() for r in caplog.records)
    row = assert_nothing_charged(db_session, user.id, error.data["message_id"])
    assert row.status == "failed" and row.error_code == "provider_auth"
    assert len(chat_calls(openai_emulator)) == 1  # a bad key is not retried


@pytest.mark.parametrize("app", STREAM_STORES, indirect=True)
def test_provider_401_without_streaming_is_a_502_naming_openai(client_for, user, openai_emulator, db_session):
    openai_emulator.control.script_reply(kind="unauthorized")
    response = post_chat(client_for, {"message": "hi"})
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "upstream_error" and "OpenAI" in error["message"]
    assert_nothing_charged(db_session, user.id, error["message_id"])


def test_rate_limit_is_retried_with_retry_after_then_succeeds(client_for, user, openai_emulator, db_session):
    openai_emulator.control.fault("POST", "/v1/chat/completions", count=2, kind="rate_limit", retry_after=0.1)
    openai_emulator.control.script_reply("Made it after retries.")
    body = post_chat(client_for, {"message": "hi"}).get_json()
    assert body["message"]["content"] == "Made it after retries."
    assert [c["status"] for c in chat_calls(openai_emulator)] == [429, 429, 200]


def test_rate_limit_that_persists_ends_as_busy_with_nothing_charged(client_for, user, openai_emulator, db_session):
    openai_emulator.control.fault("POST", "/v1/chat/completions", count=None, kind="rate_limit", retry_after=0.05)
    events = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True)).read_all()
    assert events[-1].name == "error" and "busy" in events[-1].data["message"]
    assert len(chat_calls(openai_emulator)) == openai_client.MAX_ATTEMPTS
    row = assert_nothing_charged(db_session, user.id, events[-1].data["message_id"])
    assert row.error_code == "provider_busy"


def test_a_retry_after_beyond_the_bound_is_not_waited_for(client_for, user, openai_emulator, db_session):
    openai_emulator.control.fault("POST", "/v1/chat/completions", count=None, kind="rate_limit",
                                  retry_after=openai_client.MAX_RETRY_WAIT_S + 50)
    response = post_chat(client_for, {"message": "hi"})
    assert response.status_code == 502 and "busy" in response.get_json()["error"]["message"]
    assert len(chat_calls(openai_emulator)) == 1


def test_server_errors_are_retried_then_reported(client_for, user, openai_emulator, db_session):
    openai_emulator.control.fault("POST", "/v1/chat/completions", count=None, kind="server_error")
    response = post_chat(client_for, {"message": "hi"})
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert "OpenAI failed to answer (HTTP 500)" in error["message"]
    assert len(chat_calls(openai_emulator)) == openai_client.MAX_ATTEMPTS
    assert_nothing_charged(db_session, user.id, error["message_id"])


def test_one_server_error_is_absorbed_by_a_retry(client_for, openai_emulator):
    openai_emulator.control.fault("POST", "/v1/chat/completions", count=1, kind="overloaded")
    openai_emulator.control.script_reply("Fine now.")
    assert post_chat(client_for, {"message": "hi"}).get_json()["message"]["content"] == "Fine now."


def test_a_provider_that_never_answers_times_out_and_is_not_charged(
    client_for, user, openai_emulator, db_session, app, monkeypatch
):
    monkeypatch.setattr(app.extensions["sorya.config"], "OPENAI_TIMEOUT_S", 1)
    openai_emulator.control.script_reply(hang=True, hang_s=5)
    events = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True)).read_all()
    assert events[-1].name == "error" and "in time" in events[-1].data["message"]
    row = assert_nothing_charged(db_session, user.id, events[-1].data["message_id"])
    assert row.error_code == "provider_timeout"


def test_a_stream_cut_midway_keeps_the_partial_reply_and_charges_what_was_produced(
    client_for, user, openai_emulator, db_session
):
    openai_emulator.control.script_reply(LONG_TEXT, chunk_size=10, cut_after_chunks=8)
    events = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True)).read_all()
    error = events[-1]
    partial = reply_text(events)
    assert error.name == "error" and "broke" in error.data["message"]
    # The first data event is the role chunk; seven 10-character pieces followed it.
    assert partial == LONG_TEXT[:70]
    row = reply_row(db_session, error.data["message_id"])
    assert (row.status, row.content, row.usage_source) == ("failed", partial, "estimate")
    expected = reply_cost(row.tokens_in, estimate_tokens(partial), PRICE)
    assert row.cost == expected == error.data["cost"] > 0
    assert balance(db_session, user.id) == (5000 - expected, 0)
    assert [e.delta for e in chat_entries(db_session, user.id)] == [-expected]


def test_insufficient_credits_is_402_before_any_provider_call(client, make_user, openai_emulator, db_session):
    poor = make_user("poor", balance=1)
    sign_in(client, poor)
    response = post_chat(client, {"message": "hi"})
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_credits" and "plan" in error["message"]
    assert chat_calls(openai_emulator) == []
    assert db_session.execute(select(ChatMessage)).scalars().all() == []


def test_a_send_that_waits_too_long_for_a_slot_is_a_503_with_nothing_stored_or_held(
    client_for, user, openai_emulator, db_session, monkeypatch
):
    import threading

    from app.runtime import admission

    full = threading.BoundedSemaphore(1)
    full.acquire()  # every send slot of this process is taken
    monkeypatch.setattr(admission, "_send_slots", full)
    monkeypatch.setattr(admission, "SEND_QUEUE_TIMEOUT_S", 0.05)
    response = post_chat(client_for, {"message": "hi"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"
    assert chat_calls(openai_emulator) == []
    assert db_session.execute(select(ChatMessage)).scalars().all() == []
    assert balance(db_session, user.id) == (5000, 0)
    full.release()
    assert post_chat(client_for, {"message": "hi"}).status_code == 200


def test_a_small_balance_shrinks_the_reply_room_instead_of_refusing(client, make_user, openai_emulator, db_session):
    thrifty = make_user("thrifty", balance=20)
    sign_in(client, thrifty)
    openai_emulator.control.script_reply("Short.")
    assert post_chat(client, {"message": "hi"}).status_code == 200
    room = openai_emulator.control.chat_requests()[-1]["max_completion_tokens"]
    assert chat_service.MIN_COMPLETION_TOKENS <= room < 8000


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"message": ""}, 400, "message"),
        ({"message": "   \n\t "}, 400, "message"),
        ({"message": "\x00\x01"}, 400, "message"),
        ({}, 400, "message"),
        ({"message": 42}, 400, "message"),
        ({"message": "hi", "model": "gpt-unknown"}, 400, "model"),
        ({"message": "hi", "project_id": "abc"}, 400, "project_id"),
        ({"message": "hi", "project_id": True}, 400, "project_id"),
    ],
)
def test_bad_messages_are_refused_with_the_field_at_fault(client_for, openai_emulator, body, status, field):
    response = post_chat(client_for, body)
    assert response.status_code == status
    assert field in response.get_json()["error"]["fields"]
    assert chat_calls(openai_emulator) == []


def test_a_message_over_the_limit_is_413_with_the_limit(client_for, app, openai_emulator, db_session):
    limit = app.config["MAX_MESSAGE_CHARS"]
    response = post_chat(client_for, {"message": "x" * (limit + 1)})
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "too_large" and error["limit"] == limit and f"{limit:,}" in error["message"]
    assert chat_calls(openai_emulator) == []
    assert post_chat(client_for, {"message": "é" * limit}).status_code == 200  # the limit is in characters


def test_malformed_bodies_csrf_and_auth(client, client_for, openai_emulator):
    headers = api_headers(client_for)
    assert client_for.post("/api/chat", data="{not json", headers={**headers, "Content-Type": "application/json"}
                           ).status_code == 400
    assert client_for.post("/api/chat", json=["a list"], headers=headers).status_code == 400
    assert client_for.post("/api/chat", json={"message": "hi"}).status_code == 403  # no CSRF token
    assert chat_calls(openai_emulator) == []


def test_unauthenticated_callers_get_401(app, openai_emulator):
    anonymous = app.test_client()
    assert anonymous.get("/api/chat/history").status_code == 401
    assert anonymous.get("/api/chat/1/stream").status_code == 401
    response = anonymous.post("/api/chat", json={"message": "hi"}, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthenticated"


def test_someone_elses_project_and_reply_are_404(client_for, make_user, db_session, openai_emulator):
    other = make_user("other", balance=100)
    project = Project(user_id=other.id, name="Theirs")
    db_session.add(project)
    db_session.commit()
    assert post_chat(client_for, {"message": "hi", "project_id": project.id}).status_code == 404
    theirs = ChatMessage(user_id=other.id, role="assistant", content="secret reply", status="complete")
    db_session.add(theirs)
    db_session.commit()
    headers = api_headers(client_for)
    assert client_for.get(f"/api/chat/{theirs.id}/stream").status_code == 404
    assert client_for.post(f"/api/chat/{theirs.id}/stop", headers=headers).status_code == 404
    history = client_for.get(f"/api/chat/history?project_id={project.id}")
    assert history.status_code == 404 and "secret" not in history.get_data(as_text=True)
    assert chat_calls(openai_emulator) == []


def test_sending_is_rate_limited_per_user_with_retry_after(client_for, app, openai_emulator, monkeypatch):
    monkeypatch.setattr(app.extensions["sorya.config"], "CHAT_RATE_LIMIT", "2 per minute")
    for _ in range(2):
        openai_emulator.control.script_reply("ok")
        assert post_chat(client_for, {"message": "hi"}).status_code == 200
    limited = post_chat(client_for, {"message": "hi"})
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    # The page's form shares the same budget.
    page = client_for.post("/chat", data={"message": "hi", "csrf_token": api_headers(client_for)["X-CSRFToken"]})
    assert page.status_code == 429
    assert len(chat_calls(openai_emulator)) == 2


# -- unicode and HTML in messages ----------------------------------------------------------------------


def test_unicode_and_html_round_trip_unchanged_in_the_api(client_for, openai_emulator, db_session):
    text = "Ünïcødé 🚀 <script>alert('x')</script> \u202e reversed"
    openai_emulator.control.script_reply("<img src=x onerror=alert(1)> 日本語")
    body = post_chat(client_for, {"message": text}).get_json()
    assert body["message"]["content"] == "<img src=x onerror=alert(1)> 日本語"
    user_message = db_session.get(ChatMessage, body["user_message_id"])
    assert user_message.content == text
    assert openai_emulator.control.chat_requests()[-1]["messages"][-1]["content"] == text



def test_a_script_chats_with_a_bearer_token_and_no_csrf(app, user, openai_emulator):
    from app.extensions import db
    from app.services import api_tokens

    with app.app_context():
        token = api_tokens.create_token(db.session, user_id=user.id, name="script").plaintext
    script = app.test_client()
    openai_emulator.control.script_reply("Hello, script.")
    auth = {"Authorization": f"Bearer {token}"}
    response = script.post("/api/chat", json={"message": "hi"}, headers={**auth, "Accept": "text/event-stream"},
                           buffered=False)
    events = SSEReader(response).read_all()
    assert response.status_code == 200 and reply_text(events) == "Hello, script."
    message_id = events[0].data["message_id"]
    assert script.post(f"/api/chat/{message_id}/stop", headers=auth).get_json()["status"] == "complete"
    assert [m["role"] for m in script.get("/api/chat/history", headers=auth).get_json()["messages"]] == [
        "user", "assistant"]


def test_an_exhausted_database_pool_is_a_retryable_503_not_a_500(client_for, monkeypatch, openai_emulator):
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    def busy(*args, **kwargs):
        raise PoolTimeout("QueuePool limit reached")

    monkeypatch.setattr(chat_service, "send_message", busy)
    response = post_chat(client_for, {"message": "hi"})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "unavailable"
    assert chat_calls(openai_emulator) == []


def test_a_process_shutting_down_starts_no_new_reply(client_for, monkeypatch, openai_emulator, db_session):
    from app.runtime import lifecycle

    monkeypatch.setattr(lifecycle, "is_draining", lambda: True)
    response = post_chat(client_for, {"message": "hi"})
    assert response.status_code == 503 and "restarting" in response.get_json()["error"]["message"]
    assert chat_calls(openai_emulator) == []
    assert db_session.execute(select(ChatMessage)).scalars().all() == []


def test_chat_registers_its_shutdown_hook():
    from app.runtime import lifecycle

    assert "chat generations" in lifecycle.registered_hooks()


def test_a_refused_send_gives_its_slot_back(client_for, user, openai_emulator, monkeypatch):
    import threading

    from app.runtime import admission

    # One slot: had the refused sends kept theirs, the last send would wait and get a 503.
    monkeypatch.setattr(admission, "_send_slots", threading.BoundedSemaphore(1))
    monkeypatch.setattr(admission, "SEND_QUEUE_TIMEOUT_S", 0.05)
    assert post_chat(client_for, {"message": "   "}).status_code == 400
    assert post_chat(client_for, {"message": "hi", "model": "no-such-model"}).status_code == 400
    assert post_chat(client_for, {"message": "hi"}).status_code == 200
    assert post_chat(client_for, {"message": "again"}).status_code == 200


def test_page_views_are_counted_only_while_handled_so_sends_yield_to_them_briefly(client_for, openai_emulator):
    from app.runtime.admission import INTERACTIVE

    assert client_for.get("/chat").status_code == 200
    assert client_for.get("/no-such-page").status_code == 404
    assert client_for.get("/api/projects/999999").status_code == 404
    assert INTERACTIVE.count == 0  # every kind of answer leaves the count
    openai_emulator.control.script_reply("Counted? " * 20, chunk_delay_ms=5)
    response = post_chat(client_for, {"message": "hi"}, stream=True)
    reader = SSEReader(response)
    assert reader.next_event().name == "start"
    assert INTERACTIVE.count == 0  # a send is not a page view, and a streamed body is not waited for
    # A page view in progress makes the send wait for it, but not for longer than the bound.
    from app.runtime.admission import YIELD_TO_PAGES_MAX_S

    INTERACTIVE.enter()
    try:
        started = time.monotonic()
        second = post_chat(client_for, {"message": "again"}, stream=True)
        assert second.status_code == 200
        assert time.monotonic() - started >= YIELD_TO_PAGES_MAX_S * 0.9
    finally:
        INTERACTIVE.leave()
    events = SSEReader(second).read_all()
    assert events[-1].name in ("done", "error")
    reader.read_all()
    assert INTERACTIVE.count == 0
