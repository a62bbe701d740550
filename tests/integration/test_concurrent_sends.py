"""Many sends at once from one user, through the route, on both engines: the ledger stays exact.

Twelve threads post to `/api/chat` with the same API token against a balance that covers only some of
their worst cases. Whatever interleaving happens, nobody overdraws, `held` returns to zero with no hold
left active, and `flask credits reconcile` finds nothing to report.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import CreditBalance, CreditHold, LedgerEntry
from app.services import api_tokens
from app.services import chat as chat_service

SENDERS = 12
BURSTS = 3


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


def send_all_at_once(app, token: str, count: int) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(count)
    results: list[tuple[int, dict]] = [(0, {})] * count

    def send(index: int) -> None:
        client = app.test_client()
        barrier.wait(timeout=30)
        response = client.post("/api/chat", json={"message": f"write file number {index}"},
                               headers={"Authorization": f"Bearer {token}"})
        results[index] = (response.status_code, response.get_json(silent=True) or {})

    threads = [threading.Thread(target=send, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a send hung"
    return results


def test_concurrent_sends_from_one_user_never_overdraw(app, make_user):
    # A few bursts: one interleaving that loses an update is enough to fail, but none is certain.
    for burst in range(BURSTS):
        user = make_user(f"spender{burst}", balance=168)
        with app.app_context():
            token = api_tokens.create_token(db.session, user_id=user.id, name="burst").plaintext
            db.session.remove()

        results = send_all_at_once(app, token, SENDERS)
        assert chat_service.GENERATIONS.wait_idle(60)

        statuses = {status for status, _ in results}
        assert statuses <= {200, 402} and 200 in statuses, results
        charged = sum(body["message"]["cost"] for status, body in results if status == 200)
        with app.app_context():
            balance = db.session.get(CreditBalance, user.id)
            ledger = db.session.execute(
                select(func.sum(LedgerEntry.delta)).where(LedgerEntry.user_id == user.id)
            ).scalar()
            active = db.session.execute(
                select(func.count()).select_from(CreditHold).where(
                    CreditHold.user_id == user.id, CreditHold.status == "active"
                )
            ).scalar()
            assert (balance.held, active) == (0, 0)
            assert balance.balance == ledger == 168 - charged >= 0
            db.session.remove()
        reconcile = app.test_cli_runner().invoke(args=["credits", "reconcile"])
        assert reconcile.exit_code == 0, reconcile.output
