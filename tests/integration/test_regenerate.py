"""Regenerate the latest reply, retry a failed one: a new reply to the same message, charged like any send
(held, settled on the ledger), on both engines; only the conversation's latest reply."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from app.models import ChatMessage, CreditBalance, CreditHold, LedgerEntry
from tests.chat_helpers import api_headers, post_chat
from tests.conftest import csrf_token_for


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


def ledger(db_session, user_id):
    db_session.expire_all()
    return db_session.scalars(select(LedgerEntry).where(LedgerEntry.user_id == user_id, LedgerEntry.reason == "chat")
                              .order_by(LedgerEntry.id)).all()


def test_regenerating_the_latest_reply_is_a_new_reply_charged_like_a_send(client_for, user, openai_emulator,
                                                                          db_session):
    openai_emulator.control.script_reply("First try.")
    first = post_chat(client_for, {"message": "write a haiku", "model": "gpt-5-mini"}).json
    openai_emulator.control.script_reply("Second, better try.")
    response = client_for.post(f"/api/chat/{first['message']['id']}/regenerate", headers=api_headers(client_for))
    assert response.status_code == 200, response.json
    second = response.json
    assert second["user_message_id"] == first["user_message_id"]
    assert second["message"]["id"] > first["message"]["id"] and second["message"]["content"] == "Second, better try."
    assert second["snapshot_id"] is None

    db_session.expire_all()
    new = db_session.get(ChatMessage, second["message"]["id"])
    assert (new.reply_to_id, new.model, new.status) == (first["user_message_id"], "gpt-5-mini", "complete")
    hold = db_session.scalar(select(CreditHold).where(CreditHold.idempotency_key == f"chat-reply:{new.id}"))
    assert hold.status == "settled" and hold.amount >= new.cost > 0
    entries = ledger(db_session, user.id)
    assert [-e.delta for e in entries] == [first["message"]["cost"], new.cost]
    assert db_session.get(CreditBalance, user.id).balance == 5000 - first["message"]["cost"] - new.cost
    assert second["balance"] == 5000 - first["message"]["cost"] - new.cost
    # The prompt is the conversation up to the question, without the replaced reply; the question once.
    sent = openai_emulator.control.chat_requests()[-1]["messages"]
    assert [m["content"] for m in sent].count("write a haiku") == 1
    assert not any("First try." in str(m["content"]) for m in sent)

    # The first reply is no longer the latest: 409, with a sentence, and nothing is held or charged.
    refused = client_for.post(f"/api/chat/{first['message']['id']}/regenerate", headers=api_headers(client_for))
    assert refused.status_code == 409 and "Only the latest reply" in refused.json["error"]["message"]
    assert len(ledger(db_session, user.id)) == 2
    assert db_session.get(CreditBalance, user.id).held == 0


def test_retry_a_failed_reply_from_the_page_without_javascript(client_for, user, openai_emulator, db_session):
    openai_emulator.control.script_reply(kind="unauthorized")
    failed = post_chat(client_for, {"message": "hello"})
    assert failed.status_code == 502
    reply_id = failed.json["error"]["message_id"]
    page = client_for.get("/chat").get_data(as_text=True)
    assert f'action="/chat/messages/{reply_id}/regenerate"' in page and ">Retry<" in page
    openai_emulator.control.script_reply("Worked this time.")
    response = client_for.post(f"/chat/messages/{reply_id}/regenerate", data={"csrf_token": csrf_token_for(client_for)})
    assert response.status_code == 303
    db_session.expire_all()
    newest = db_session.scalar(select(ChatMessage).order_by(ChatMessage.id.desc()).limit(1))
    assert response.headers["Location"].endswith(f"#message-{newest.id}")
    assert (newest.content, newest.status, newest.reply_to_id) == ("Worked this time.", "complete",
                                                                   db_session.get(ChatMessage, reply_id).reply_to_id)
    assert [-e.delta for e in ledger(db_session, user.id)] == [newest.cost]


def test_two_clicks_at_once_make_one_new_reply(client_for, user, openai_emulator, app, db_session):
    openai_emulator.control.script_reply("Original.")
    first = post_chat(client_for, {"message": "hi"}).json
    openai_emulator.control.script_reply("Again.")
    openai_emulator.control.script_reply("Again twice.")
    token = csrf_token_for(client_for)
    statuses = []

    def click():
        client = app.test_client()
        with client_for.session_transaction() as source, client.session_transaction() as target:
            target.update(source)
        statuses.append(client.post(f"/api/chat/{first['message']['id']}/regenerate",
                                    headers={"X-CSRFToken": token, "Accept": "application/json"}).status_code)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 409]
    db_session.expire_all()
    replies = db_session.scalars(select(ChatMessage).where(ChatMessage.role == "assistant")).all()
    assert len(replies) == 2 and db_session.get(CreditBalance, user.id).held == 0


def test_someone_elses_reply_cannot_be_regenerated(client_for, make_user, app):
    from tests.snapshot_helpers import make_reply

    other = make_user("other", balance=100)
    reply_id = make_reply(app, other, None, "Their reply.")
    response = client_for.post(f"/api/chat/{reply_id}/regenerate", headers=api_headers(client_for))
    assert response.status_code == 404
