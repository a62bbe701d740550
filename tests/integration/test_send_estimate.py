"""The most a send can cost, shown before sending, is the very hold the send then places."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import ChatMessage, CreditHold
from tests.chat_helpers import api_headers, post_chat
from tests.conftest import sign_in
from tests.snapshot_helpers import make_project, make_snapshot


def hold_of(db_session, reply_id):
    db_session.expire_all()
    reply = db_session.get(ChatMessage, reply_id)
    return db_session.scalar(select(CreditHold).where(CreditHold.idempotency_key == f"chat-reply:{reply.id}"))


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini"])
def test_the_estimate_equals_the_hold_the_send_places(client_for, user, openai_emulator, app, db_session, model):
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"app.py": "print('hello')\n" * 50, "README.md": "# Demo\n"})
    openai_emulator.control.script_reply("First answer.")
    post_chat(client_for, {"message": "hello there", "project_id": project_id})
    draft = "Please change app.py so that it greets the world " * 10
    estimate = client_for.post("/api/chat/estimate", json={"message": draft, "project_id": project_id, "model": model},
                               headers=api_headers(client_for))
    assert estimate.status_code == 200
    body = estimate.json
    assert body["affordable"] is True and body["context_tokens"] > 50 and body["model"] == model

    openai_emulator.control.script_reply("Second answer.")
    sent = post_chat(client_for, {"message": draft, "project_id": project_id, "model": model}).json
    hold = hold_of(db_session, sent["message"]["id"])
    assert hold.amount == body["hold_credits"] > 0
    assert sent["message"]["tokens_in"] <= body["context_tokens"] + 50  # the same prompt, as the provider counts it


def test_the_composer_fragment(client_for, user):
    page = client_for.get("/chat/estimate", query_string={"message": "hi"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "at most" in html and "credits · context" in html
    assert page.headers["Cache-Control"] == "private, no-store"
    bad = client_for.get("/chat/estimate", query_string={"message": "hi", "model": "nope"})
    assert bad.status_code == 400 and "Choose one of the available models" in bad.get_data(as_text=True)


def test_a_balance_too_small_says_what_a_reply_needs(client, make_user):
    sign_in(client, make_user("poor", balance=1))
    body = client.post("/api/chat/estimate", json={"message": "hi"}, headers=api_headers(client)).json
    assert body["affordable"] is False and body["available"] == 1 and body["hold_credits"] > 1
    html = client.get("/chat/estimate", query_string={"message": "hi"}).get_data(as_text=True)
    assert "needs up to" in html and "you have 1 available" in html


def test_someone_elses_project_is_not_found(client_for, make_user, app):
    other = make_user("other")
    project_id = make_project(app, other)
    response = client_for.post("/api/chat/estimate", json={"message": "hi", "project_id": project_id},
                               headers=api_headers(client_for))
    assert response.status_code == 404
