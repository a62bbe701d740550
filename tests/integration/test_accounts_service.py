"""The accounts service on MariaDB: racing sign-ins on real connections, renames, disable, deletion."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.crypto import decrypt_secret
from app.errors import Conflict, Forbidden
from app.models import ApiToken, ChatMessage, CreditBalance, GithubAccount, LedgerEntry, Project, User
from app.providers.github import GithubGrant, GithubIdentity
from app.services import accounts, api_tokens, credits

SECRET = "test-secret-key-" + "x" * 32


def identity(github_id: int = 4242, login: str = "hubot", email: str | None = "hubot@example.com") -> GithubIdentity:
    return GithubIdentity(id=github_id, login=login, name="Hubot", email=email)


def sign_in(app, who: GithubIdentity, token: str = "gho_secret_token_value", grant: int = 5000):
    from app import runtime
    from app.extensions import db

    with app.app_context():
        try:
            return accounts.sign_in_with_github(
                db.session, identity=who, grant=GithubGrant(token, ("read:user", "user:email", "repo")),
                keyring=runtime.keyring(), signup_credits=grant, secret_key=SECRET,
            )
        finally:
            db.session.remove()


def test_concurrent_sign_ins_of_a_new_user_make_one_account_and_one_grant(app, db_session):
    threads_count = 6
    barrier = threading.Barrier(threads_count)
    results, errors = [], []

    def run():
        barrier.wait()
        try:
            results.append(sign_in(app, identity()))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert len({r.user_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert sum(r.signup_credits for r in results) == 5000
    db_session.rollback()
    assert db_session.execute(select(func.count()).select_from(User)).scalar_one() == 1
    assert db_session.execute(select(func.sum(LedgerEntry.delta))).scalar_one() == 5000
    assert db_session.get(CreditBalance, results[0].user_id).balance == 5000


def test_the_grant_key_is_stable_per_github_user_and_does_not_name_them():
    key = accounts.signup_grant_key(SECRET, 4242)
    assert key == accounts.signup_grant_key(SECRET, 4242)
    assert key != accounts.signup_grant_key(SECRET, 4243)
    assert "4242" not in key and len(key) <= 191


def test_a_grant_lost_to_a_crash_is_posted_at_the_next_sign_in(app, db_session):
    first = sign_in(app, identity(), grant=0)  # as if the process died before posting the grant
    assert first.signup_credits == 0
    again = sign_in(app, identity())
    assert (again.created, again.signup_credits) == (False, 5000)
    assert sign_in(app, identity()).signup_credits == 0


def test_the_token_is_stored_encrypted_and_bound_to_its_user(app, db_session):
    result = sign_in(app, identity(), token="gho_plain_value_123")
    stored = db_session.execute(select(GithubAccount.access_token_encrypted)).scalar_one()
    assert "gho_plain_value_123" not in stored
    keyring = app.extensions["sorya.keyring"]
    assert decrypt_secret(keyring, stored, purpose=accounts.GITHUB_TOKEN_PURPOSE, owner=result.user_id) == (
        "gho_plain_value_123"
    )


def test_an_empty_email_read_keeps_the_known_email(app, db_session):
    result = sign_in(app, identity(email="first@example.com"))
    sign_in(app, identity(email=None))
    db_session.rollback()
    assert db_session.get(User, result.user_id).email == "first@example.com"


def test_disabled_accounts_are_refused_and_left_untouched(app, db_session):
    result = sign_in(app, identity(), token="gho_before")
    accounts.disable_user(db_session, "hubot")
    with pytest.raises(Forbidden):
        sign_in(app, identity(login="hubot-renamed"), token="gho_after")
    db_session.rollback()
    user = db_session.get(User, result.user_id)
    assert user.login == "hubot" and user.disabled_at is not None
    accounts.enable_user(db_session, "HUBOT")  # logins are found case-insensitively
    assert sign_in(app, identity(), token="gho_after").user_id == result.user_id


def test_deleting_an_account_removes_its_data_and_anonymises_its_ledger(app, db_session, make_user):
    other = make_user("bystander", balance=300)
    result = sign_in(app, identity())
    user_id = result.user_id
    project = Project(user_id=user_id, name="Mine")
    db_session.add(project)
    db_session.flush()
    question = ChatMessage(user_id=user_id, project_id=project.id, role="user", content="hi")
    db_session.add(question)
    db_session.flush()
    db_session.add(ChatMessage(user_id=user_id, project_id=project.id, role="assistant", content="hello",
                               reply_to_id=question.id))
    db_session.commit()
    api_tokens.create_token(db_session, user_id=user_id, name="ci")
    credits.post_ledger_entry(db_session, user_id=user_id, delta=-100, reason="chat", idempotency_key="chat:1")

    accounts.delete_account(db_session, user_id)

    db_session.rollback()
    assert db_session.get(User, user_id) is None
    for model in (GithubAccount, ApiToken, Project, ChatMessage):
        assert db_session.execute(select(func.count()).select_from(model)).scalar_one() == 0
    assert db_session.get(CreditBalance, user_id) is None
    kept = db_session.execute(select(LedgerEntry).order_by(LedgerEntry.id)).scalars().all()
    orphaned = [(e.user_id, e.delta) for e in kept if e.user_id != other.id]
    assert orphaned == [(None, 5000), (None, -100)]
    assert db_session.get(CreditBalance, other.id).balance == 300
    # The same GitHub user coming back gets an account, not a second grant.
    again = sign_in(app, identity())
    assert (again.created, again.signup_credits) == (True, 0)


def test_an_account_that_is_still_billed_cannot_be_deleted(app, db_session):
    from app.models import Subscription

    result = sign_in(app, identity())
    db_session.add(Subscription(user_id=result.user_id, stripe_subscription_id="sub_1", stripe_customer_id="cus_1",
                                plan="basic", status="active"))
    db_session.commit()
    with pytest.raises(Conflict):
        accounts.delete_account(db_session, result.user_id)
    assert db_session.get(User, result.user_id) is not None
