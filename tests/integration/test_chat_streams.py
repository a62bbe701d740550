"""Replies detached from their HTTP connection: stop, resume with Last-Event-ID, another web process,
a closed tab, the stale sweep, history and the project context."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from app.models import (
    Blob,
    ChatMessage,
    CreditBalance,
    CreditHold,
    LedgerEntry,
    Project,
    Snapshot,
)
from app.models.base import utcnow
from app.runtime.redis_streams import RedisReplyStreams
from app.runtime.streams import StreamEvent
from app.services import chat as chat_service
from app.services import credits
from app.services.chat.prompt import estimate_tokens
from app.services.credits import Price, reply_cost
from tests.chat_helpers import SSEReader, api_headers, parse_sse, post_chat, reply_text, wait_for
from tests.conftest import session_cookie_id
from tests.snapshot_helpers import attach_files

PRICE = Price(10, 10)
LONG_TEXT = " ".join(f"token{i}" for i in range(400))
ROOT = Path(__file__).resolve().parents[2]


def row(db_session, message_id):
    db_session.expire_all()
    return db_session.get(ChatMessage, message_id)


def read_until(reader, count):
    return [reader.next_event() for _ in range(count)]


# -- stop --------------------------------------------------------------------------------------------


def test_stop_ends_the_reply_keeps_its_text_and_charges_only_what_was_produced(
    client_for, user, openai_emulator, db_session
):
    openai_emulator.control.script_reply(LONG_TEXT, chunk_delay_ms=20)
    reader = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True))
    start, *deltas = read_until(reader, 3)
    message_id = start.data["message_id"]
    stop = client_for.post(f"/api/chat/{message_id}/stop", headers=api_headers(client_for))
    assert stop.status_code == 200
    assert stop.get_json() == {"message_id": message_id, "status": "stopped"}
    events = [start, *deltas, *reader.read_all()]
    done = events[-1]
    assert done.name == "done" and done.data["status"] == "stopped"

    reply = row(db_session, message_id)
    streamed = reply_text(events)
    assert reply.status == "stopped" and reply.content == streamed
    assert 0 < len(streamed) < len(LONG_TEXT) and LONG_TEXT.startswith(streamed)
    expected = reply_cost(reply.tokens_in, estimate_tokens(streamed), PRICE)
    assert reply.usage_source == "estimate" and reply.cost == expected == done.data["cost"]
    db_session.expire_all()
    assert db_session.get(CreditBalance, user.id).balance == 5000 - expected
    assert db_session.get(CreditHold, reply.hold_id).status == "settled"
    # Stopping again answers the final status; the provider was called once.
    again = client_for.post(f"/api/chat/{message_id}/stop", headers=api_headers(client_for))
    assert again.get_json()["status"] == "stopped"
    assert len([c for c in openai_emulator.control.calls() if c["path"] == "/v1/chat/completions"]) == 1


def test_stop_while_the_model_is_still_thinking_ends_it_at_once_without_charge(
    client_for, user, openai_emulator, db_session
):
    openai_emulator.control.script_reply("late text", first_byte_delay_ms=4000)
    reader = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True))
    start = reader.next_event()
    stop = client_for.post(f"/api/chat/{start.data['message_id']}/stop", headers=api_headers(client_for))
    assert stop.get_json()["status"] == "stopped"
    done = reader.next_event()
    assert done.name == "done" and done.data["cost"] == 0
    reply = row(db_session, start.data["message_id"])
    assert reply.status == "stopped" and reply.content == ""
    assert db_session.get(CreditHold, reply.hold_id).status == "released"
    db_session.expire_all()
    assert (db_session.get(CreditBalance, user.id).balance, db_session.get(CreditBalance, user.id).held) == (5000, 0)


def test_stopping_a_finished_reply_answers_its_status(client_for, openai_emulator):
    openai_emulator.control.script_reply("done already")
    message_id = post_chat(client_for, {"message": "hi"}).get_json()["message"]["id"]
    response = client_for.post(f"/api/chat/{message_id}/stop", headers=api_headers(client_for))
    assert response.get_json() == {"message_id": message_id, "status": "complete"}
    user_message_id = message_id - 1
    assert client_for.post(f"/api/chat/{user_message_id}/stop", headers=api_headers(client_for)).status_code == 404
    assert client_for.post(f"/api/chat/{message_id}/stop").status_code == 403  # CSRF


# -- resume ------------------------------------------------------------------------------------------


def test_resume_with_last_event_id_loses_and_repeats_nothing(client_for, openai_emulator):
    openai_emulator.control.script_reply(LONG_TEXT, chunk_delay_ms=5)
    reader = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True))
    first = read_until(reader, 4)
    reader.close()
    message_id = first[0].data["message_id"]
    resumed = client_for.get(f"/api/chat/{message_id}/stream", headers={"Last-Event-ID": str(first[-1].id)},
                             buffered=False)
    assert resumed.status_code == 200
    rest = SSEReader(resumed).read_all()
    assert rest[0].id == first[-1].id + 1  # exactly the next event: nothing lost, nothing repeated
    ids = [e.id for e in first + rest]
    assert ids == sorted(set(ids))
    assert rest[-1].name == "done"
    assert reply_text(first + rest) == LONG_TEXT

    # A second tab attaching from the start sees the whole reply; one attaching after the end, nothing more.
    whole = SSEReader(client_for.get(f"/api/chat/{message_id}/stream", buffered=False)).read_all()
    assert reply_text(whole) == LONG_TEXT and whole[0].name == "start" and whole[-1].name == "done"
    last = client_for.get(f"/api/chat/{message_id}/stream", headers={"Last-Event-ID": str(whole[-1].id)},
                          buffered=False)
    assert [e.name for e in SSEReader(last).read_all()] == []


def test_an_expired_stream_is_rebuilt_from_the_database(client_for, openai_emulator, app):
    openai_emulator.control.script_reply("Kept in the database.")
    message_id = post_chat(client_for, {"message": "hi"}).get_json()["message"]["id"]
    with app.app_context():
        from app import runtime

        runtime.redis_client().delete(RedisReplyStreams.key(message_id))
    events = SSEReader(client_for.get(f"/api/chat/{message_id}/stream", buffered=False)).read_all()
    assert [e.name for e in events] == ["start", "delta", "done"]
    assert reply_text(events) == "Kept in the database."


def test_bad_last_event_id_is_400(client_for, openai_emulator):
    openai_emulator.control.script_reply("x")
    message_id = post_chat(client_for, {"message": "hi"}).get_json()["message"]["id"]
    for bad in ("abc", "-1"):
        response = client_for.get(f"/api/chat/{message_id}/stream", headers={"Last-Event-ID": bad})
        assert response.status_code == 400


def test_a_reply_completes_and_is_charged_after_its_client_disconnected(client_for, user, openai_emulator, db_session):
    openai_emulator.control.script_reply(LONG_TEXT, chunk_delay_ms=2)
    reader = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True))
    start, _delta = read_until(reader, 2)
    reader.close()  # the tab closes
    message_id = start.data["message_id"]
    reply = wait_for(lambda: (r := row(db_session, message_id)).status == "complete" and r)
    assert reply.content == LONG_TEXT and reply.cost > 0 and reply.usage_source == "provider"
    db_session.expire_all()
    assert db_session.get(CreditBalance, user.id).balance == 5000 - reply.cost


# -- two web processes sharing Redis -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def second_instance(app, app_config, tmp_path):
    """Another Sorya web process on the same MariaDB and Redis (as a second gunicorn host would be)."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": app_config.DATABASE_URL,
        "REDIS_URL": app_config.REDIS_URL,
        "SECRET_KEY": app_config.SECRET_KEY,
        "ENCRYPTION_KEY": app_config.ENCRYPTION_KEY,
        "OPENAI_API_KEY": app_config.OPENAI_API_KEY,
        "OPENAI_BASE_URL": app_config.OPENAI_BASE_URL,
        "OPENAI_MODEL": app_config.OPENAI_MODEL,
        "OPENAI_MODELS": ",".join(app_config.OPENAI_MODELS),
        "SORYA_INSTANCE_DIR": str(tmp_path),
    }
    code = (
        "from werkzeug.serving import run_simple; from app import create_app; "
        f"run_simple('127.0.0.1', {port}, create_app(), threaded=True)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "the second instance did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def session_cookie(app, user) -> str:
    from flask import session as flask_session

    cookie_id = session_cookie_id(app, user.id)
    with app.test_request_context():
        flask_session["_user_id"] = cookie_id
        flask_session["_fresh"] = True
        return app.session_interface.get_signing_serializer(app).dumps(dict(flask_session))


def test_a_reconnect_to_another_web_process_continues_the_stream(
    client_for, user, app, openai_emulator, second_instance
):
    openai_emulator.control.script_reply(LONG_TEXT, chunk_delay_ms=10)
    reader = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True))
    first = read_until(reader, 3)
    reader.close()
    message_id = first[0].data["message_id"]
    response = requests.get(
        f"{second_instance}/api/chat/{message_id}/stream",
        headers={"Last-Event-ID": str(first[-1].id), "Cookie": f"session={session_cookie(app, user)}"},
        stream=True, timeout=30,
    )
    assert response.status_code == 200
    rest = parse_sse(response.content.decode())
    assert rest[0].id == first[-1].id + 1 and rest[-1].name == "done"
    assert reply_text(first + rest) == LONG_TEXT


def test_a_stop_sent_to_another_web_process_stops_the_reply(client_for, user, app, openai_emulator, second_instance,
                                                             db_session):
    openai_emulator.control.script_reply(LONG_TEXT, chunk_delay_ms=20)
    reader = SSEReader(post_chat(client_for, {"message": "hi"}, stream=True))
    start, _ = read_until(reader, 2)
    browser = requests.Session()
    browser.cookies.set("session", session_cookie(app, user), domain="127.0.0.1")
    page = browser.get(f"{second_instance}/chat", timeout=10)
    token = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    stopped = browser.post(f"{second_instance}/api/chat/{start.data['message_id']}/stop",
                           headers={"X-CSRFToken": token}, timeout=10)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert reader.read_all()[-1].data["status"] == "stopped"
    assert row(db_session, start.data["message_id"]).status == "stopped"


# -- the stale sweep ---------------------------------------------------------------------------------


def test_sweep_fails_a_reply_whose_process_died_and_charges_what_it_streamed(app, user, db_session):
    long_ago = utcnow() - timedelta(seconds=chat_service.STALE_AFTER_S + 30)
    reply = ChatMessage(user_id=user.id, role="assistant", content="partial", model="gpt-5", status="streaming",
                        tokens_in=120, heartbeat_at=long_ago, created_at=long_ago)
    fresh = ChatMessage(user_id=user.id, role="assistant", content="", model="gpt-5", status="streaming",
                        heartbeat_at=utcnow())
    db_session.add_all([reply, fresh])
    db_session.commit()
    hold = credits.place_hold(db_session, user_id=user.id, amount=500, idempotency_key=f"chat-reply:{reply.id}")
    reply = db_session.get(ChatMessage, reply.id)
    reply.hold_id = hold.id
    db_session.commit()
    from app import runtime

    streams = RedisReplyStreams(runtime.redis_client())
    streams.publish(reply.id, StreamEvent(1, "start", {"message_id": reply.id}))
    streams.publish(reply.id, StreamEvent(2, "delta", {"text": "partial text, streamed further"}))

    result = app.test_cli_runner().invoke(args=["credits", "sweep"])
    assert result.exit_code == 0, result.output
    assert "abandoned replies marked failed: 1" in result.output

    swept = row(db_session, reply.id)
    assert swept.status == "failed" and swept.content == "partial text, streamed further"
    expected = reply_cost(120, estimate_tokens("partial text, streamed further"), PRICE)
    assert swept.cost == expected and swept.usage_source == "estimate"
    assert db_session.get(CreditBalance, user.id).balance == 5000 - expected
    assert db_session.get(CreditBalance, user.id).held == 0
    assert row(db_session, fresh.id).status == "streaming"
    ending = streams.read(reply.id, 2, timeout_s=0.01)
    assert [(e.id, e.name) for e in ending] == [(3, "error")]
    # A second sweep finds nothing and charges nothing more.
    again = app.test_cli_runner().invoke(args=["credits", "sweep"])
    assert "abandoned replies marked failed: 0" in again.output
    entries = db_session.execute(select(LedgerEntry).where(LedgerEntry.reason == "chat")).scalars().all()
    assert [e.delta for e in entries] == [-expected]


# -- history -----------------------------------------------------------------------------------------


def test_history_pages_by_keyset_oldest_first_within_a_page(client_for, user, make_user, db_session):
    other = make_user("other")
    project = Project(user_id=user.id, name="P")
    db_session.add(project)
    db_session.commit()
    db_session.add_all([ChatMessage(user_id=user.id, role="user", content=f"m{i}") for i in range(230)])
    db_session.add_all([ChatMessage(user_id=user.id, project_id=project.id, role="user", content="in project")])
    db_session.add_all([ChatMessage(user_id=other.id, role="user", content="not yours")])
    db_session.commit()

    pages, before = [], None
    while True:
        url = "/api/chat/history" + (f"?before={before}" if before else "")
        body = client_for.get(url).get_json()
        pages.append([m["content"] for m in body["messages"]])
        before = body["next_before"]
        if before is None:
            break
    assert [len(p) for p in pages] == [100, 100, 30]
    assert pages[0][0] == "m130" and pages[0][-1] == "m229" and pages[2][0] == "m0"
    flat = [c for page in reversed(pages) for c in page]
    assert flat == [f"m{i}" for i in range(230)]

    small = client_for.get("/api/chat/history?limit=5").get_json()
    assert [m["content"] for m in small["messages"]] == [f"m{i}" for i in range(225, 230)]
    assert set(small["messages"][0]) >= {"id", "role", "content", "project_id", "tokens_in", "tokens_out", "cost",
                                         "created_at", "status"}
    in_project = client_for.get(f"/api/chat/history?project_id={project.id}").get_json()
    assert [m["content"] for m in in_project["messages"]] == ["in project"] and in_project["next_before"] is None
    assert client_for.get("/api/chat/history?limit=101").status_code == 400
    assert client_for.get("/api/chat/history?limit=0").status_code == 400
    assert client_for.get("/api/chat/history?before=x").status_code == 400
    assert client_for.get("/api/chat/history?project_id=999999").status_code == 404


# -- the project's context ---------------------------------------------------------------------------


def add_snapshot(db_session, project, files):
    snapshot = Snapshot(project_id=project.id, number=1, file_count=len(files))
    db_session.add(snapshot)
    db_session.flush()
    blob_ids = {}
    for index, (path, content) in enumerate(files.items()):
        blob = Blob(sha256=f"{index:064d}", git_sha=f"{index:040d}", size=len(content), content=content.encode())
        db_session.add(blob)
        db_session.flush()
        blob_ids[path] = blob.id
    attach_files(db_session, snapshot, blob_ids)
    db_session.commit()


def test_project_chat_sends_the_file_list_and_the_files_the_message_names(
    client_for, user, openai_emulator, db_session
):
    project = Project(user_id=user.id, name="Shop")
    db_session.add(project)
    db_session.commit()
    add_snapshot(db_session, project, {"app/main.py": "print('MAIN BODY')", "app/util.py": "UTIL BODY",
                                       "README.md": "README BODY"})
    openai_emulator.control.script_reply("ok")
    response = post_chat(client_for, {"message": "Please fix the bug in app/main.py", "project_id": project.id})
    assert response.status_code == 200
    messages = openai_emulator.control.chat_requests()[-1]["messages"]
    context = messages[1]["content"]
    assert messages[1]["role"] == "system" and "Shop" in context
    assert all(path in context for path in ("app/main.py", "app/util.py", "README.md"))
    assert "MAIN BODY" in context and "UTIL BODY" not in context and "README BODY" not in context
    history = client_for.get(f"/api/chat/history?project_id={project.id}").get_json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert client_for.get("/api/chat/history").get_json()["messages"] == []


def test_sweep_releases_the_hold_of_a_reply_that_died_before_its_first_token(app, user, db_session):
    long_ago = utcnow() - timedelta(seconds=chat_service.STALE_AFTER_S + 30)
    reply = ChatMessage(user_id=user.id, role="assistant", content="", model="gpt-5", status="pending",
                        tokens_in=50, heartbeat_at=long_ago, created_at=long_ago)
    db_session.add(reply)
    db_session.commit()
    # The hold is linked only by its key: the process died before the first save stored hold_id.
    hold = credits.place_hold(db_session, user_id=user.id, amount=300, idempotency_key=f"chat-reply:{reply.id}")
    result = app.test_cli_runner().invoke(args=["credits", "sweep"])
    assert "abandoned replies marked failed: 1" in result.output
    swept = row(db_session, reply.id)
    assert (swept.status, swept.cost, swept.hold_id) == ("failed", 0, hold.id)
    db_session.expire_all()
    assert db_session.get(CreditHold, hold.id).status == "released"
    assert (db_session.get(CreditBalance, user.id).balance, db_session.get(CreditBalance, user.id).held) == (5000, 0)
