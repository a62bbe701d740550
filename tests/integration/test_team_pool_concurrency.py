"""One team pool, five members with monthly caps, fifty sends at once, on both engines: exact.

Ten threads per member post to `/api/chat` on a team project. Whatever the interleaving: the pool never
goes below zero, no member's settled spending passes their cap, every refusal at a cap says so
(`"reason": "member_cap"`), no hold is left active, and `flask credits reconcile` finds nothing.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import CreditBalance, CreditHold, LedgerEntry, Workspace
from app.services import api_tokens, credits, projects, workspaces
from app.services import chat as chat_service

MEMBERS = 5
SENDS_PER_MEMBER = 10
CAPS = [120, 200, 260, 400, 90]
POOL = 900


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


def build_team(app, make_user):
    owner = make_user("teamowner")
    people = [make_user(f"member{i}") for i in range(MEMBERS)]
    with app.app_context():
        team = workspaces.create_team(db.session, user_id=owner.id, name="Acme")
        team_id, account_id = team.id, team.account_user_id
        for person, cap in zip(people, CAPS, strict=True):
            workspaces.add_member(db.session, user_id=owner.id, workspace_id=team_id, login=person.login,
                                  monthly_cap=cap)
        credits.post_ledger_entry(db.session, user_id=account_id, delta=POOL, reason=credits.REASON_ADMIN_GRANT,
                                  idempotency_key="test-pool")
        project = projects.create_project(db.session, user_id=owner.id, name="shared", workspace_id=team_id)
        tokens = [api_tokens.create_token(db.session, user_id=p.id, name="t").plaintext for p in people]
        project_id = project.id
        db.session.remove()
    return people, account_id, project_id, tokens


def send_all_at_once(app, jobs: list[tuple[str, int]]) -> list[tuple[int, dict, int]]:
    barrier = threading.Barrier(len(jobs))
    results: list[tuple[int, dict, int]] = [(0, {}, 0)] * len(jobs)

    def send(index: int, token: str, project_id: int) -> None:
        client = app.test_client()
        barrier.wait(timeout=60)
        response = client.post("/api/chat", json={"message": f"write file number {index}", "project_id": project_id},
                               headers={"Authorization": f"Bearer {token}"})
        results[index] = (response.status_code, response.get_json(silent=True) or {}, index)

    threads = [threading.Thread(target=send, args=(i, token, pid)) for i, (token, pid) in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not any(thread.is_alive() for thread in threads), "a send hung"
    return results


def test_fifty_sends_from_five_members_never_pass_pool_or_caps(app, make_user):
    people, account_id, project_id, tokens = build_team(app, make_user)
    jobs = [(tokens[i % MEMBERS], project_id) for i in range(MEMBERS * SENDS_PER_MEMBER)]
    results = send_all_at_once(app, jobs)
    assert chat_service.GENERATIONS.wait_idle(120)

    statuses = {status for status, _, _ in results}
    assert statuses <= {200, 402} and 200 in statuses, results
    reasons = {body["error"].get("reason") for status, body, _ in results if status == 402}
    assert "member_cap" in reasons, results
    cap_refusal = next(body for status, body, _ in results if status == 402
                       and body["error"].get("reason") == "member_cap")
    assert "monthly cap in Acme" in cap_refusal["error"]["message"]
    assert "teamowner can raise it" in cap_refusal["error"]["message"]
    with app.app_context():
        pool = db.session.get(CreditBalance, account_id)
        ledger = db.session.execute(select(func.sum(LedgerEntry.delta))
                                    .where(LedgerEntry.user_id == account_id)).scalar()
        active = db.session.execute(select(func.count()).select_from(CreditHold).where(
            CreditHold.user_id == account_id, CreditHold.status == "active")).scalar()
        assert (pool.held, active) == (0, 0)
        assert pool.balance == ledger >= 0
        charged = sum(body["message"]["cost"] for status, body, _ in results if status == 200)
        assert pool.balance == POOL - charged
        for person, cap in zip(people, CAPS, strict=True):
            spent = -(db.session.execute(select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(
                LedgerEntry.user_id == account_id, LedgerEntry.member_id == person.id)).scalar())
            assert 0 < spent <= cap, (person.login, spent, cap)
            # Members spent the pool, not their own balances.
            assert not db.session.execute(select(LedgerEntry.id).where(LedgerEntry.user_id == person.id)).first()
        assert db.session.execute(select(Workspace.name).where(Workspace.account_user_id == account_id)).scalar() == "Acme"
        db.session.remove()
    reconcile = app.test_cli_runner().invoke(args=["credits", "reconcile"])
    assert reconcile.exit_code == 0, reconcile.output
