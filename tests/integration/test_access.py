"""The access module, the only door to a project, a reply or a snapshot: the owner gets it, anyone else
and a missing id get the same 404 sentence, and `lock=True` really locks the row."""

from __future__ import annotations

import pytest

from app.errors import NotFound
from app.extensions import db
from app.models import ChatMessage, User
from app.services import access
from tests.snapshot_helpers import make_project, make_reply, make_snapshot, reply_with
from tests.sql_helpers import statements_on

MISSING_ID = 10**9


@pytest.fixture
def owned(app, make_user):
    """An owner's project with a snapshot and a reply, and a second user with a project of their own."""
    owner, other = make_user("owner"), make_user("other")
    project_id = make_project(app, owner)
    other_project_id = make_project(app, other, name="Other's app")
    return {
        "owner": owner.id,
        "other": other.id,
        "project": project_id,
        "other_project": other_project_id,
        "snapshot": make_snapshot(app, owner, project_id, {"a.py": "1\n"}),
        "reply": make_reply(app, owner, project_id, reply_with({"b.py": "2\n"})),
    }


def test_the_owner_gets_each_object(db_session, owned):
    project = access.owned_project(db_session, user_id=owned["owner"], project_id=owned["project"])
    reply = access.owned_reply(db_session, user_id=owned["owner"], message_id=owned["reply"])
    snapshot = access.owned_snapshot(db_session, user_id=owned["owner"], snapshot_id=owned["snapshot"],
                                     project_id=owned["project"])
    assert (project.id, reply.id, snapshot.id) == (owned["project"], owned["reply"], owned["snapshot"])


@pytest.mark.parametrize("who", ["other", "missing"])
def test_another_user_and_a_missing_id_get_the_same_404(db_session, owned, who):
    user_id = owned["other"] if who == "other" else owned["owner"]
    project_id = owned["project"] if who == "other" else MISSING_ID
    message_id = owned["reply"] if who == "other" else MISSING_ID
    snapshot_id = owned["snapshot"] if who == "other" else MISSING_ID
    with pytest.raises(NotFound) as project_error:
        access.owned_project(db_session, user_id=user_id, project_id=project_id)
    with pytest.raises(NotFound) as locked_error:
        access.owned_project(db_session, user_id=user_id, project_id=project_id, lock=True)
    with pytest.raises(NotFound) as reply_error:
        access.owned_reply(db_session, user_id=user_id, message_id=message_id)
    with pytest.raises(NotFound) as snapshot_error:
        access.owned_snapshot(db_session, user_id=user_id, snapshot_id=snapshot_id)
    assert project_error.value.message == locked_error.value.message == access.PROJECT_NOT_FOUND
    assert reply_error.value.message == access.REPLY_NOT_FOUND
    assert snapshot_error.value.message == access.SNAPSHOT_NOT_FOUND


def test_a_snapshot_under_another_project_is_not_found(db_session, owned, app):
    owner = db_session.get(User, owned["owner"])
    second_project = make_project(app, owner, name="Second")
    with pytest.raises(NotFound):
        access.owned_snapshot(db_session, user_id=owned["owner"], snapshot_id=owned["snapshot"],
                              project_id=second_project)


def test_a_persons_own_message_is_not_a_reply(db_session, owned):
    question_id = db_session.get(ChatMessage, owned["reply"]).reply_to_id
    with pytest.raises(NotFound):
        access.owned_reply(db_session, user_id=owned["owner"], message_id=question_id)


def test_lock_true_reads_the_project_and_the_reply_for_update(app, db_session, owned):
    with statements_on(db.engine) as statements:
        access.owned_project(db_session, user_id=owned["owner"], project_id=owned["project"], lock=True)
        access.owned_reply(db_session, user_id=owned["owner"], message_id=owned["reply"], lock=True)
    db_session.rollback()
    locking = [s for s in statements if "FOR UPDATE" in s.upper()]
    assert len(locking) == 2, statements
    assert "projects" in locking[0] and "chat_messages" in locking[1]


def test_without_lock_nothing_is_read_for_update(app, db_session, owned):
    with statements_on(db.engine) as statements:
        access.owned_project(db_session, user_id=owned["owner"], project_id=owned["project"])
        access.owned_reply(db_session, user_id=owned["owner"], message_id=owned["reply"])
        access.owned_snapshot(db_session, user_id=owned["owner"], snapshot_id=owned["snapshot"])
    db_session.rollback()
    assert statements and not [s for s in statements if "FOR UPDATE" in s.upper()]
