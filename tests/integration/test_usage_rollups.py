"""Daily usage rollups on both engines: a chat charge counts into its rollup in the transaction that posts
it (a real send, a settled hold, concurrent charges), `flask usage reconcile` finds and fixes drift, and a
deleted member's spending stays as no member's."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import LedgerEntry, UsageDaily
from app.models.base import utcnow
from app.services import accounts, credits, projects, workspaces
from app.services.usage import reconcile
from tests.chat_helpers import api_headers
from tests.conftest import sign_in
from tests.usage_helpers import charge_reply


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


def rollup_rows(app) -> list[tuple]:
    with app.app_context():
        found = db.session.execute(select(
            UsageDaily.account_id, UsageDaily.member_id, UsageDaily.project_id, UsageDaily.model,
            UsageDaily.tokens_in, UsageDaily.tokens_out, UsageDaily.credits, UsageDaily.replies,
            UsageDaily.failed_replies, UsageDaily.stopped_replies).order_by(
            UsageDaily.account_id, UsageDaily.member_id, UsageDaily.project_id, UsageDaily.model)).all()
        db.session.remove()
    return [tuple(row) for row in found]


def test_a_real_send_and_settled_holds_count_exactly_and_reconcile_agrees(app, make_user, client):
    owner, mia = make_user("owner", balance=5000), make_user("mia", balance=100)
    with app.app_context():
        team = workspaces.create_team(db.session, user_id=owner.id, name="Acme")
        workspaces.add_member(db.session, user_id=owner.id, workspace_id=team.id, login="mia")
        project_id = projects.create_project(db.session, user_id=mia.id, name="shared", workspace_id=team.id).id
        pool_id = team.account_user_id
        credits.grant_credits(db.session, user_id=pool_id, amount=3000, note="pool", idempotency_key="pool")
        db.session.remove()
    sign_in(client, mia)
    sent = client.post("/api/chat", json={"message": "hello", "project_id": project_id}, headers=api_headers(client))
    assert sent.status_code == 200, sent.get_json()
    reply = sent.get_json()["message"]
    charge_reply(app, "f1", account_id=pool_id, member_id=mia.id, project_id=project_id, model="gpt-5-mini",
                 cost=7, tokens_in=50, tokens_out=3, status="failed")
    charge_reply(app, "s1", account_id=pool_id, member_id=mia.id, project_id=project_id, model="gpt-5-mini",
                 cost=11, tokens_in=60, tokens_out=9, status="stopped")
    charge_reply(app, "own", account_id=owner.id, cost=5, tokens_in=10, tokens_out=2)

    assert rollup_rows(app) == [
        (owner.id, 0, 0, "gpt-5", 10, 2, 5, 1, 0, 0),
        (pool_id, mia.id, project_id, reply["model"], reply["tokens_in"], reply["tokens_out"], reply["cost"], 1, 0, 0),
        (pool_id, mia.id, project_id, "gpt-5-mini", 110, 12, 18, 2, 1, 1),
    ]
    with app.app_context():
        # The send's charge carries its project on the ledger, so the ledger alone rebuilds the rollup.
        meta = db.session.execute(select(LedgerEntry.meta).where(
            LedgerEntry.idempotency_key == f"chat:{reply['id']}")).scalar_one()
        assert meta["project_id"] == project_id
        db.session.remove()
    checked = app.test_cli_runner().invoke(args=["usage", "reconcile"])
    assert checked.exit_code == 0 and "match the ledger" in checked.output


def test_reconcile_reports_drift_then_fixes_it(app, make_user):
    ada = make_user("ada", balance=1000)
    for number in range(3):
        charge_reply(app, f"c{number}", account_id=ada.id, cost=10 + number, tokens_in=100, tokens_out=20)
    with app.app_context():
        # A settle that lost its rollup, a row with wrong credits, a row the ledger knows nothing about.
        db.session.execute(update(UsageDaily).values(credits=UsageDaily.credits + 5))
        credits.post_ledger_entry(db.session, user_id=ada.id, delta=-4, reason="chat", idempotency_key="direct",
                                  meta={"tokens_in": 1, "tokens_out": 1}, model="other")
        db.session.execute(UsageDaily.__table__.delete().where(UsageDaily.model == "other"))
        db.session.execute(UsageDaily.__table__.insert().values(
            account_id=ada.id, day=utcnow().date().replace(day=1), member_id=0, project_id=99, model="ghost",
            tokens_in=0, tokens_out=0, credits=1, replies=1, failed_replies=0, stopped_replies=0))
        db.session.commit()
        db.session.remove()
    runner = app.test_cli_runner()
    reported = runner.invoke(args=["usage", "reconcile"])
    assert reported.exit_code == 1, reported.output
    assert "3 rollup rows differ" in reported.output
    assert "model=ghost: ledger none; rollup" in reported.output
    assert "model=other: ledger tokens_in=1 tokens_out=1 credits=4 replies=1" in reported.output
    fixed = runner.invoke(args=["usage", "reconcile", "--fix"])
    assert fixed.exit_code == 0 and "Rewrote 3 rollup rows" in fixed.output
    assert runner.invoke(args=["usage", "reconcile"]).exit_code == 0
    assert sorted(row[6] for row in rollup_rows(app)) == [4, 33]  # 10 + 11 + 12 today; the direct charge


def test_concurrent_charges_on_one_rollup_row_are_all_counted(app, make_user):
    ada = make_user("ada", balance=10_000)
    errors: list[BaseException] = []

    def charge(number: int) -> None:
        try:
            with app.app_context():
                credits.post_ledger_entry(db.session, user_id=ada.id, delta=-(number + 1), reason="chat",
                                          idempotency_key=f"t{number}", model="gpt-5",
                                          meta={"tokens_in": 10, "tokens_out": number, "status": "complete"})
                db.session.remove()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=charge, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert rollup_rows(app) == [(ada.id, 0, 0, "gpt-5", 160, sum(range(16)), sum(range(1, 17)), 16, 0, 0)]


def test_a_deleted_members_spending_stays_as_no_members(app, make_user):
    owner, mia = make_user("owner", balance=2000), make_user("mia")
    with app.app_context():
        team = workspaces.create_team(db.session, user_id=owner.id, name="Acme")
        workspaces.add_member(db.session, user_id=owner.id, workspace_id=team.id, login="mia")
        pool_id = team.account_user_id
        credits.grant_credits(db.session, user_id=pool_id, amount=500, note="pool", idempotency_key="pool")
        db.session.remove()
    charge_reply(app, "m1", account_id=pool_id, member_id=mia.id, cost=30, tokens_in=5, tokens_out=5)
    with app.app_context():
        accounts.delete_account(db.session, mia.id)
        db.session.remove()
    assert [row[:2] + row[6:8] for row in rollup_rows(app)] == [(pool_id, 0, 30, 1)]
    assert app.test_cli_runner().invoke(args=["usage", "reconcile"]).exit_code == 0
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(UsageDaily)).scalar() == 1
        assert reconcile.reconcile_usage(db.session) == []
        db.session.remove()
