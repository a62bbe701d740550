"""Chat on the embedded default: SQLite, no Redis (the in-process broker), through the OpenAI emulator."""

import pytest
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from app.models import ChatMessage, User
from app.services import chat as chat_service
from app.services.credits import post_ledger_entry
from tests.chat_helpers import SSEReader, api_headers, post_chat, reply_text
from tests.conftest import build_config, session_cookie_id


@pytest.fixture
def emulator_reset_after(openai_emulator):
    """This test has no `app` fixture, so the harness would not reset the emulator's log after it."""
    yield openai_emulator
    openai_emulator.control.reset()


def test_chat_streams_resumes_and_charges_on_sqlite_without_redis(tmp_path, emulator_reset_after, provider_settings):
    openai_emulator = emulator_reset_after
    config = build_config(str(tmp_path), **provider_settings)
    assert not config.REDIS_URL and config.DATABASE_URL.startswith("sqlite")
    application = create_app(config)
    with application.app_context():
        upgrade()
        user = User(login="solo", name="Solo")
        db.session.add(user)
        db.session.commit()
        user_id = user.id
        post_ledger_entry(db.session, user_id=user_id, delta=1000, reason="adjustment", idempotency_key="start")
    client = application.test_client()
    cookie_id = session_cookie_id(application, user_id)
    with client.session_transaction() as session:
        session["_user_id"] = cookie_id
    text = " ".join(f"piece{i}" for i in range(60))
    openai_emulator.control.script_reply(text, chunk_delay_ms=5)

    reader = SSEReader(post_chat(client, {"message": "hello"}, stream=True))
    first = [reader.next_event() for _ in range(2)]
    reader.close()
    message_id = first[0].data["message_id"]
    rest = SSEReader(client.get(f"/api/chat/{message_id}/stream", headers={"Last-Event-ID": str(first[-1].id)},
                                buffered=False)).read_all()
    assert reply_text(first + rest) == text and rest[-1].name == "done"
    assert chat_service.GENERATIONS.wait_idle(10)
    with application.app_context():
        reply = db.session.get(ChatMessage, message_id)
        assert reply.status == "complete" and reply.cost == rest[-1].data["cost"] > 0
    assert rest[-1].data["balance"] == 1000 - reply.cost
    history = client.get("/api/chat/history").get_json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert client.post(f"/api/chat/{message_id}/stop", headers=api_headers(client)).get_json()["status"] == "complete"
