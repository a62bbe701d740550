"""The chat pages: HTMX sending, the page without JavaScript, errors next to the box, history, search."""

from __future__ import annotations

import re

import pytest

from app.models import ChatMessage, Project
from tests.chat_helpers import (
    STREAM_STORES,
    app_on_stream_store,
    leave_stale_streams_at_the_next_ids,
    wait_for,
)
from tests.conftest import csrf_token_for, sign_in

XSS_REPLY = 'Look: <img src=x onerror=alert(1)> and <script>alert("boom")</script> [click](javascript:alert(2))\n\n' \
            "```python path=app/main.py\nprint('<b>hi</b>')\n```\n"


@pytest.fixture
def app(request, app, app_config, tmp_path):
    """The session's app (Redis), or the same on the in-process broker for tests parametrised with it."""
    yield from app_on_stream_store(getattr(request, "param", "redis"), app, app_config, str(tmp_path))


@pytest.fixture
def browser_client(client, user):
    sign_in(client, user)
    client.csrf = csrf_token_for(client)
    return client


def send_form(client, text, *, url="/chat", htmx=False, model=None):
    data = {"message": text, "csrf_token": client.csrf}
    if model:
        data["model"] = model
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(url, data=data, headers=headers)


def test_the_page_needs_a_sign_in(app):
    response = app.test_client().get("/chat")
    assert response.status_code == 302 and response.headers["Location"].endswith("next=/chat")


def test_an_empty_conversation_says_what_to_do(browser_client):
    page = browser_client.get("/chat").get_data(as_text=True)
    assert "Start the conversation" in page
    assert '<option value="gpt-5" selected>' in page and '<option value="gpt-5-mini"' in page
    assert 'id="composer"' in page and 'maxlength="20000"' in page
    assert "js/chat.js" in page and "<script>" not in page


def test_sending_with_htmx_appends_the_message_and_a_live_reply(browser_client, openai_emulator, db_session):
    openai_emulator.control.script_reply("Streaming **reply**.", chunk_delay_ms=5)
    response = send_form(browser_client, "Hello <b>there</b>", htmx=True)
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "Hello &lt;b&gt;there&lt;/b&gt;" in fragment
    match = re.search(r'data-stream-url="/api/chat/(\d+)/stream"', fragment)
    assert match, fragment
    reply_id = int(match.group(1))
    assert f'data-fragment-url="/chat/messages/{reply_id}"' in fragment
    assert '<div id="chat-empty" hx-swap-oob="true" hidden></div>' in fragment and "Stop" in fragment

    wait_for(lambda: (db_session.expire_all() or db_session.get(ChatMessage, reply_id).status) == "complete")
    finished = browser_client.get(f"/chat/messages/{reply_id}").get_data(as_text=True)
    assert "<strong>reply</strong>" in finished and "data-stream-url" not in finished
    assert 'id="credit-counter"' in finished and 'hx-swap-oob="true"' in finished
    cost = db_session.get(ChatMessage, reply_id).cost
    assert f"{cost:,} credits" in finished and f"{5000 - cost:,}" in finished


@pytest.mark.parametrize("app", STREAM_STORES, indirect=True)
def test_without_javascript_the_form_waits_for_the_reply_and_shows_it_safely(
    browser_client, openai_emulator, db_session
):
    openai_emulator.control.script_reply(XSS_REPLY, chunk_delay_ms=10)
    response = send_form(browser_client, "show me", model="gpt-5-mini")
    assert response.status_code == 303
    location = re.match(r"/chat#message-(\d+)$", response.headers["Location"])
    assert location
    db_session.expire_all()
    reply = db_session.get(ChatMessage, int(location.group(1)))
    assert (reply.status, reply.content) == ("complete", XSS_REPLY) and reply.cost > 0
    page = browser_client.get("/chat").get_data(as_text=True)
    body = page.split('<main', 1)[1]
    assert "<script" not in body and "<img" not in body
    assert '&lt;script&gt;alert("boom")&lt;/script&gt;' in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert 'href="javascript:' not in body
    assert '<span class="code-path">app/main.py</span>' in body
    assert re.search(r'data-copy-target="(code-\d+-1)".*id="\1"', body, re.S)
    assert "gpt-5-mini" in body and '<option value="gpt-5-mini" selected>' in body


@pytest.mark.parametrize("app", STREAM_STORES, indirect=True)
def test_without_javascript_a_stream_left_under_the_same_id_by_an_earlier_database_is_not_the_reply(
    app, browser_client, user, openai_emulator, db_session
):
    stale_ids = leave_stale_streams_at_the_next_ids(app, user.id)
    openai_emulator.control.script_reply("The reply of this database.", chunk_delay_ms=20)
    response = send_form(browser_client, "hello again")
    assert response.status_code == 303
    reply_id = int(re.match(r"/chat#message-(\d+)$", response.headers["Location"]).group(1))
    assert reply_id in stale_ids
    db_session.expire_all()
    reply = db_session.get(ChatMessage, reply_id)
    assert (reply.status, reply.content) == ("complete", "The reply of this database.")
    page = browser_client.get("/chat").get_data(as_text=True)
    assert "The reply of this database." in page and "A reply from the old database." not in page


@pytest.mark.parametrize(
    ("text", "status", "words"),
    [("   ", 400, "Write a message first"), ("x" * 20001, 413, "limited to 20,000 characters")],
)
def test_bad_messages_show_the_error_next_to_the_box(browser_client, openai_emulator, text, status, words):
    htmx = send_form(browser_client, text, htmx=True)
    assert htmx.status_code == status
    assert htmx.headers["HX-Retarget"] == "#composer-error"
    assert words in htmx.get_data(as_text=True)
    page = send_form(browser_client, text)
    assert page.status_code == status
    html = page.get_data(as_text=True)
    assert words in html and 'id="composer-error"' in html
    assert html.index(words) > html.index('id="message"')  # next to the box, below it
    if text.strip():
        assert text[:100] in html  # the draft is kept
    assert openai_emulator.control.chat_requests() == []


def test_insufficient_credits_on_the_page_says_so(client, make_user, openai_emulator):
    poor = make_user("poor", balance=0)
    sign_in(client, poor)
    client.csrf = csrf_token_for(client)
    response = send_form(client, "hi", htmx=True)
    assert response.status_code == 402 and "Choose a plan" in response.get_data(as_text=True)
    assert openai_emulator.control.chat_requests() == []


def test_the_form_needs_its_csrf_token(browser_client, openai_emulator):
    assert browser_client.post("/chat", data={"message": "hi"}).status_code == 403


def test_load_earlier_brings_the_previous_page(browser_client, user, db_session):
    db_session.add_all([ChatMessage(user_id=user.id, role="user", content=f"note {i}") for i in range(45)])
    db_session.commit()
    page = browser_client.get("/chat").get_data(as_text=True)
    assert "note 44" in page and "note 15" in page and "note 14</div>" not in page
    link = re.search(r'hx-get="(/chat\?before=\d+)"', page).group(1)
    earlier = browser_client.get(link, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "note 14</div>" in earlier and "note 0</div>" in earlier and "note 15</div>" not in earlier
    assert "Load earlier" not in earlier and "<html" not in earlier
    plain = browser_client.get(link).get_data(as_text=True)  # the same link with JavaScript off
    assert "<html" in plain and "note 0</div>" in plain and "Jump to the latest" in plain


def test_search_finds_messages_of_this_project_only(browser_client, user, make_user, db_session):
    mine = Project(user_id=user.id, name="Widgets")
    other_project = Project(user_id=user.id, name="Other")
    db_session.add_all([mine, other_project])
    db_session.commit()
    db_session.add_all([
        ChatMessage(user_id=user.id, project_id=mine.id, role="user", content="Add a WIDGET counter"),
        ChatMessage(user_id=user.id, project_id=mine.id, role="assistant", content="The widget is done", status="complete"),
        ChatMessage(user_id=user.id, project_id=mine.id, role="user", content="100% sure?"),
        ChatMessage(user_id=user.id, project_id=other_project.id, role="user", content="widget elsewhere"),
    ])
    db_session.commit()
    found = browser_client.get(f"/projects/{mine.id}/chat?q=widget").get_data(as_text=True)
    assert "2 messages matching" in found and "elsewhere" not in found.split("search-results", 1)[1].split("</ol>")[0]
    percent = browser_client.get(f"/projects/{mine.id}/chat?q=%25").get_data(as_text=True)
    assert "1 message matching" in percent
    none = browser_client.get(f"/projects/{mine.id}/chat?q=nothing-like-this").get_data(as_text=True)
    assert "0 messages matching" in none and "Try a shorter word" in none


def test_someone_elses_project_chat_and_messages_are_404(browser_client, make_user, db_session):
    other = make_user("other")
    theirs = Project(user_id=other.id, name="Secret project")
    db_session.add(theirs)
    db_session.commit()
    reply = ChatMessage(user_id=other.id, project_id=theirs.id, role="assistant", content="secret", status="complete")
    db_session.add(reply)
    db_session.commit()
    for response in (
        browser_client.get(f"/projects/{theirs.id}/chat"),
        browser_client.get(f"/chat/messages/{reply.id}"),
        send_form(browser_client, "hi", url=f"/projects/{theirs.id}/chat"),
        browser_client.post(f"/chat/messages/{reply.id}/stop", data={"csrf_token": browser_client.csrf}),
    ):
        assert response.status_code == 404
        assert "Secret project" not in response.get_data(as_text=True)


def test_stop_from_the_page(browser_client, openai_emulator, db_session):
    openai_emulator.control.script_reply(" ".join(["word"] * 400), chunk_delay_ms=20)
    fragment = send_form(browser_client, "hi", htmx=True).get_data(as_text=True)
    reply_id = int(re.search(r"/api/chat/(\d+)/stream", fragment).group(1))
    wait_for(lambda: (db_session.expire_all() or db_session.get(ChatMessage, reply_id).content))
    stop = browser_client.post(f"/chat/messages/{reply_id}/stop", data={"csrf_token": browser_client.csrf},
                               headers={"HX-Request": "true"})
    assert stop.status_code == 204
    db_session.expire_all()
    assert db_session.get(ChatMessage, reply_id).status == "stopped"
    page = browser_client.get("/chat").get_data(as_text=True)
    assert "Stopped. What was written so far is kept." in page
