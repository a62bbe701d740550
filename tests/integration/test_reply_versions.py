"""Every finished reply of a project that writes files becomes a version by itself, once; stopped replies
keep their complete files on request; general-chat replies are saved to a project."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.models import ChatMessage, LedgerEntry, Project, Snapshot
from app.models.base import utcnow
from app.services.snapshots import auto
from tests.chat_helpers import SSEReader, api_headers, post_chat
from tests.conftest import csrf_token_for
from tests.snapshot_helpers import GENEROUS_LIMITS, make_project, make_reply, make_snapshot, reply_with

FILES = {"index.html": "<h1>Hi</h1>\n", "style.css": "h1 { color: red; }\n"}


def snapshots_of(db_session, project_id):
    db_session.expire_all()
    return db_session.scalars(select(Snapshot).where(Snapshot.project_id == project_id)
                              .order_by(Snapshot.number)).all()


def test_a_finished_reply_with_files_is_a_version_named_by_its_done_event(client_for, user, openai_emulator, app,
                                                                          db_session):
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"README.md": "# Demo\n", "style.css": "h1 {}\n"})
    openai_emulator.control.script_reply(reply_with(FILES), chunk_delay_ms=1)
    events = SSEReader(post_chat(client_for, {"message": "make a page", "project_id": project_id},
                                 stream=True)).read_all()
    done = events[-1]
    assert done.name == "done" and "edit_errors" not in done.data
    [first, version] = snapshots_of(db_session, project_id)
    assert done.data["snapshot_id"] == version.id and version.source_message_id == done.data["message_id"]
    assert (version.number, version.parent_id) == (2, first.id)
    assert version.notes["added"] == ["index.html"] and version.notes["changed"] == ["style.css"]
    message = db_session.get(ChatMessage, done.data["message_id"])
    assert message.meta == {"snapshot_id": version.id}

    # Re-attaching after the end rebuilds the same done event, version included.
    again = SSEReader(client_for.get(f"/api/chat/{message.id}/stream", headers={"Last-Event-ID": "1"},
                                     buffered=False)).read_all()
    assert again[-1].name == "done" and again[-1].data["snapshot_id"] == version.id

    # Taking it again (the old button, the API) answers the same version: 200, not a new one.
    response = client_for.post(f"/api/projects/{project_id}/snapshots", json={"message_id": message.id},
                               headers=api_headers(client_for))
    assert response.status_code == 200 and response.json["id"] == version.id
    assert len(snapshots_of(db_session, project_id)) == 2


def test_post_api_chat_answers_the_snapshot_id_and_null_without_files(client_for, user, openai_emulator, app,
                                                                      db_session):
    project_id = make_project(app, user)
    openai_emulator.control.script_reply(reply_with({"app.js": "console.log(1)\n"}))
    body = post_chat(client_for, {"message": "code", "project_id": project_id}).json
    [version] = snapshots_of(db_session, project_id)
    assert body["snapshot_id"] == version.id
    openai_emulator.control.script_reply("Just words, no files.")
    body = post_chat(client_for, {"message": "talk", "project_id": project_id}).json
    assert body["snapshot_id"] is None and len(snapshots_of(db_session, project_id)) == 1
    # A reply without files records it at its end (no second transaction), so the sweep never looks at it.
    assert db_session.get(ChatMessage, body["message"]["id"]).meta == {"snapshot_id": None}
    # The general chat never versions anything.
    openai_emulator.control.script_reply(reply_with({"app.js": "x\n"}))
    assert post_chat(client_for, {"message": "code"}).json["snapshot_id"] is None


def test_a_version_that_cannot_be_made_is_recorded_and_the_reply_is_still_charged(
    client_for, user, openai_emulator, app, db_session
):
    project_id = make_project(app, user)
    openai_emulator.control.script_reply(reply_with({"big.txt": "x" * 3000}))
    config = app.extensions["sorya.config"]
    old = config.SNAPSHOT_MAX_FILE_BYTES
    object.__setattr__(config, "SNAPSHOT_MAX_FILE_BYTES", 1000)
    try:
        body = post_chat(client_for, {"message": "big", "project_id": project_id}).json
    finally:
        object.__setattr__(config, "SNAPSHOT_MAX_FILE_BYTES", old)
    assert body["snapshot_id"] is None and body["message"]["cost"] > 0
    message = db_session.get(ChatMessage, body["message"]["id"])
    db_session.refresh(message)
    assert message.status == "complete" and "1,000 bytes" in message.meta["error"]
    entry = db_session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == f"chat:{message.id}"))
    assert entry.delta == -body["message"]["cost"]
    page = client_for.get(f"/projects/{project_id}/chat").get_data(as_text=True)
    assert "No version made" in page and "1,000 bytes" in page


def test_versioning_is_once_per_reply_and_the_sweep_makes_the_missed_ones(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    message_id = make_reply(app, user, project_id, reply_with(FILES))
    stopped_id = make_reply(app, user, project_id, reply_with({"cut.py": "x\n"}), status="stopped")
    long_ago = utcnow() - timedelta(minutes=5)
    db_session.execute(ChatMessage.__table__.update().values(finished_at=long_ago))
    db_session.commit()

    # The process stopped between the reply's end and its version: the sweep makes it, once.
    assert auto.version_missed_replies(db_session, limits=GENEROUS_LIMITS) == 1
    assert auto.version_missed_replies(db_session, limits=GENEROUS_LIMITS) == 0
    [version] = snapshots_of(db_session, project_id)
    assert version.source_message_id == message_id
    # A second finish (another process, a retry) gets the same version back.
    again = auto.version_reply(db_session, user_id=user.id, message_id=message_id, limits=GENEROUS_LIMITS)
    assert (again.snapshot_id, again.number) == (version.id, 1)
    # A stopped reply is never versioned by itself.
    assert auto.version_reply(db_session, user_id=user.id, message_id=stopped_id,
                              limits=GENEROUS_LIMITS).snapshot_id is None
    assert db_session.scalar(select(func.count()).select_from(Snapshot)) == 1


def test_the_sweep_leaves_failed_replies_unversioned(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    make_reply(app, user, project_id, reply_with(FILES), status="failed")
    db_session.execute(ChatMessage.__table__.update().values(finished_at=utcnow() - timedelta(minutes=5)))
    db_session.commit()
    assert auto.version_missed_replies(db_session, limits=GENEROUS_LIMITS) == 0
    assert snapshots_of(db_session, project_id) == []


def test_keep_these_files_keeps_the_complete_files_of_a_stopped_reply_without_the_cut_one(
    client_for, user, app, db_session
):
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"app.py": "print('v1')\n"})
    message_id = make_reply(app, user, project_id, "```path=page.html\n<p>ok</p>\n```\n```python path=app.py\nprint('v",
                            status="stopped")
    page = client_for.get(f"/projects/{project_id}/chat").get_data(as_text=True)
    assert "Keep these files" in page and "1 complete file" in page
    token = csrf_token_for(client_for)
    response = client_for.post(f"/messages/{message_id}/keep", data={"csrf_token": token})
    assert response.status_code == 302
    [_, kept] = snapshots_of(db_session, project_id)
    assert kept.notes["added"] == ["page.html"] and kept.notes["changed"] == []
    # With htmx the chip is swapped in place and now names the version.
    response = client_for.post(f"/messages/{message_id}/keep", data={"csrf_token": token},
                               headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and f'id="reply-chip-{message_id}"' in html and ">v2<" in html
    # A finished reply is not kept this way: it is a version already.
    done_id = make_reply(app, user, project_id, reply_with(FILES))
    response = client_for.post(f"/messages/{done_id}/keep", data={"csrf_token": token},
                               headers={"Accept": "application/json"})
    assert response.status_code == 409


def test_a_general_chat_reply_is_saved_to_an_existing_or_a_new_project(client_for, user, app, db_session):
    project_id = make_project(app, user, "Existing")
    message_id = make_reply(app, user, None, reply_with(FILES))
    page = client_for.get("/chat").get_data(as_text=True)
    assert "Save to a project" in page and "Existing" in page
    token = csrf_token_for(client_for)
    response = client_for.post(f"/messages/{message_id}/save-to-project",
                               data={"csrf_token": token, "project_id": str(project_id)})
    assert response.status_code == 302
    assert [s.source_message_id for s in snapshots_of(db_session, project_id)] == [message_id]

    other_id = make_reply(app, user, None, reply_with({"main.py": "print(1)\n"}))
    response = client_for.post(f"/messages/{other_id}/save-to-project",
                               data={"csrf_token": token, "project_id": "new", "new_project_name": "Fresh app"},
                               headers={"Accept": "application/json"})
    assert response.status_code == 201
    project = db_session.scalar(select(Project).where(Project.name == "Fresh app"))
    assert response.json["project_id"] == project.id and response.json["files"] == ["main.py"]
    response = client_for.post(f"/messages/{other_id}/save-to-project",
                               data={"csrf_token": token, "project_id": "new", "new_project_name": "  "},
                               headers={"Accept": "application/json"})
    assert response.status_code == 400


def test_a_new_project_made_for_a_refused_save_is_not_left_behind(app, user, db_session):
    from dataclasses import replace

    from app.errors import TooLarge
    from app.extensions import db

    message_id = make_reply(app, user, None, reply_with({"main.py": "print(1)\n" * 50}))
    tight = replace(GENEROUS_LIMITS, max_total_bytes=10)
    with app.app_context():
        with pytest.raises(TooLarge):
            auto.save_reply_to_project(db.session, user_id=user.id, message_id=message_id, project_id=None,
                                       new_project_name="Too big", limits=tight)
        db.session.remove()
    assert db_session.scalar(select(func.count()).select_from(Project).where(Project.name == "Too big")) == 0


def test_another_users_reply_cannot_be_kept_or_saved(client_for, make_user, app):
    other = make_user("someone")
    message_id = make_reply(app, other, None, reply_with(FILES), status="stopped")
    token = csrf_token_for(client_for)
    for url in (f"/messages/{message_id}/keep", f"/messages/{message_id}/save-to-project"):
        assert client_for.post(url, data={"csrf_token": token, "project_id": "new", "new_project_name": "x"},
                               headers={"Accept": "application/json"}).status_code == 404
