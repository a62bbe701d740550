"""Edits through the chat: a reply of edit blocks becomes a version; failed edits make none, are charged,
shown, and fixed by a charged follow-up; the prompt elides earlier file bodies; New conversation."""

from __future__ import annotations

from sqlalchemy import select

from app.models import ChatMessage, LedgerEntry, Snapshot
from app.services import snapshots as svc
from tests.chat_helpers import SSEReader, api_headers, post_chat
from tests.snapshot_helpers import make_project, make_snapshot

APP_PY = "def greet():\n    return 'hello'\n\n\nprint(greet())\n"


def edit_reply(path: str, search: str, replace: str, intro: str = "Changed it.") -> str:
    return f"{intro}\n\n```python path={path} edit\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


def latest_files(db_session, project_id) -> tuple[Snapshot, dict[str, bytes]]:
    db_session.expire_all()
    snap = db_session.scalars(select(Snapshot).where(Snapshot.project_id == project_id)
                              .order_by(Snapshot.number.desc())).first()
    entries = svc.list_snapshot_files(db_session, snap.id)
    contents = svc.read_blob_contents(db_session, [e.blob_id for e in entries])
    return snap, {e.path: contents[e.blob_id] for e in entries}


def ledger_delta(db_session, message_id: int) -> int:
    entry = db_session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == f"chat:{message_id}"))
    return entry.delta


def test_a_streamed_reply_of_edit_blocks_becomes_a_version_with_the_change(client_for, user, openai_emulator, app,
                                                                           db_session):
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"app.py": APP_PY, "README.md": "# Hi\n"})
    openai_emulator.control.script_reply(edit_reply("app.py", "    return 'hello'\n", "    return 'hello, world'\n"),
                                         chunk_size=7)
    events = SSEReader(post_chat(client_for, {"message": "greet the world in app.py", "project_id": project_id},
                                 stream=True)).read_all()
    done = events[-1]
    assert done.name == "done" and "edit_errors" not in done.data
    snap, files = latest_files(db_session, project_id)
    assert done.data["snapshot_id"] == snap.id and snap.number == 2
    assert files == {"app.py": APP_PY.replace("'hello'", "'hello, world'").encode(), "README.md": b"# Hi\n"}
    page = client_for.get(f"/projects/{project_id}/chat").get_data(as_text=True)
    assert "diff-del" in page and "diff-add" in page and "&lt;&lt;&lt;&lt;&lt;&lt;&lt; SEARCH" not in page
    # The prompt asked for edits and carried the file; the footer says what made it up.
    request = openai_emulator.control.chat_requests()[-1]
    assert "<<<<<<< SEARCH" in request["messages"][0]["content"]
    assert any("Current content of app.py" in m["content"] for m in request["messages"])
    reply = db_session.get(ChatMessage, done.data["message_id"])
    assert reply.prompt_parts["files_sent"] == ["app.py"] and reply.prompt_parts["files"] > 0
    assert "What was sent" in page and "Files: " in page


def test_failed_edits_make_no_version_are_charged_shown_and_fixed_by_a_charged_follow_up(
    client_for, user, openai_emulator, app, db_session
):
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"app.py": APP_PY})
    openai_emulator.control.script_reply(edit_reply("app.py", "    return 'bye'\n", "    return 'ciao'\n"))
    body = post_chat(client_for, {"message": "change app.py", "project_id": project_id}).json
    assert body["snapshot_id"] is None
    assert body["edit_errors"] == [{"path": "app.py", "block": 1, "section": 1, "reason": "not_found",
                                    "detail": body["edit_errors"][0]["detail"]}]
    failed_id = body["message"]["id"]
    assert body["message"]["cost"] > 0 and ledger_delta(db_session, failed_id) == -body["message"]["cost"]
    snap, _ = latest_files(db_session, project_id)
    assert snap.number == 1  # no version

    page = client_for.get(f"/projects/{project_id}/chat").get_data(as_text=True)
    assert "could not be applied, so no version was made" in page and "Block 1, change 1" in page
    assert f"It was still charged {body['message']['cost']:,} credit" in page
    assert "Fix the edits" in page and "A new reply: at most" in page

    estimate = client_for.get(f"/chat/estimate?project_id={project_id}")  # the composer's, for contrast
    assert estimate.status_code == 200
    # Fix the edits (JSON): a normal charged send whose message names the failure; the prompt has app.py.
    openai_emulator.control.script_reply(edit_reply("app.py", "    return 'hello'\n", "    return 'ciao'\n"))
    fixed = client_for.post(f"/api/chat/{failed_id}/fix-edits", json={}, headers=api_headers(client_for)).json
    assert fixed["snapshot_id"] is not None and "edit_errors" not in fixed
    assert fixed["message"]["cost"] > 0 and ledger_delta(db_session, fixed["message"]["id"]) == -fixed["message"]["cost"]
    sent = openai_emulator.control.chat_requests()[-1]["messages"]
    assert "block 1, section 1 of app.py: not found" in sent[-1]["content"]
    assert any("Current content of app.py" in m["content"] for m in sent if m["role"] == "system")
    _, files = latest_files(db_session, project_id)
    assert files["app.py"] == APP_PY.replace("'hello'", "'ciao'").encode()

    # A reply without failed edits cannot be "fixed".
    again = client_for.post(f"/api/chat/{fixed['message']['id']}/fix-edits", json={}, headers=api_headers(client_for))
    assert again.status_code == 400 and "no failed edits" in again.json["error"]["message"]


def test_the_prompt_elides_earlier_file_bodies_and_new_conversation_resets_it(client_for, user, openai_emulator, app,
                                                                             db_session):
    project_id = make_project(app, user)
    big = "x = 1\n" + "# filler line\n" * 200
    openai_emulator.control.script_reply(f"Here.\n\n```python path=big.py\n{big}```\n")
    post_chat(client_for, {"message": "write it", "project_id": project_id})
    openai_emulator.control.script_reply("Sure.")
    post_chat(client_for, {"message": "what next?", "project_id": project_id})
    messages = openai_emulator.control.chat_requests()[-1]["messages"]
    earlier = [m["content"] for m in messages if m["role"] == "assistant"]
    assert earlier == ["Here.\n\n[wrote big.py → now in v1]\n"]
    # The file's body is sent once, as the current version's content (the last reply names it), not
    # again inside the history.
    assert [m["role"] for m in messages if "# filler line" in m["content"]] == ["system"]

    response = client_for.post(f"/projects/{project_id}/chat/new-conversation",
                               data={"csrf_token": api_headers(client_for)["X-CSRFToken"]})
    assert response.status_code == 303
    openai_emulator.control.script_reply("Fresh.")
    post_chat(client_for, {"message": "hello again", "project_id": project_id})
    messages = openai_emulator.control.chat_requests()[-1]["messages"]
    assert [m["role"] for m in messages if m["role"] != "system"] == ["user"]
    page = client_for.get(f"/projects/{project_id}/chat").get_data(as_text=True)
    assert "write it" in page and "earlier messages are not sent to the model" in page
    assert page.index("write it") < page.index("earlier messages are not sent") < page.index("hello again")


def test_a_stopped_reply_shows_what_the_ledger_charged(client_for, user, openai_emulator, app, db_session):
    from tests.chat_helpers import reply_text

    project_id = make_project(app, user)
    openai_emulator.control.script_reply(" ".join(f"word{i}" for i in range(400)), chunk_delay_ms=20)
    reader = SSEReader(post_chat(client_for, {"message": "talk", "project_id": project_id}, stream=True))
    start, *deltas = [reader.next_event() for _ in range(3)]
    message_id = start.data["message_id"]
    client_for.post(f"/api/chat/{message_id}/stop", headers=api_headers(client_for))
    events = [start, *deltas, *reader.read_all()]
    assert events[-1].data["status"] == "stopped" and reply_text(events)
    db_session.expire_all()
    reply = db_session.get(ChatMessage, message_id)
    charged = -ledger_delta(db_session, message_id)
    assert 0 < charged == reply.cost == events[-1].data["cost"]
    page = client_for.get(f"/projects/{project_id}/chat").get_data(as_text=True)
    article = page[page.index(f'id="message-{message_id}"'):]
    assert f'<span class="reply-cost">{charged:,} credits</span>' in article
    assert f"{reply.tokens_in:,} in · {reply.tokens_out:,} out (estimated)" in article
