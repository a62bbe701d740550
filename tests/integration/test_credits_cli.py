"""`flask credits grant|balance|reconcile|sweep`, through Flask's CLI runner on the real database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import CreditBalance, CreditHold, LedgerEntry
from app.models.base import utcnow
from app.services import credits


def entries_of(app, user_id):
    with app.app_context():
        rows = db.session.execute(
            select(LedgerEntry).where(LedgerEntry.user_id == user_id).order_by(LedgerEntry.id)
        ).scalars().all()
        result = [(row.delta, row.reason, row.meta, row.idempotency_key) for row in rows]
        db.session.remove()
    return result


def test_balance_prints_a_bare_integer(app, make_user):
    make_user("alice", balance=12345)
    result = app.test_cli_runner().invoke(args=["credits", "balance", "alice"])
    assert result.exit_code == 0 and result.output == "12345\n"


def test_unknown_login_is_an_error(app):
    runner = app.test_cli_runner()
    for args in (["credits", "balance", "ghost"], ["credits", "grant", "ghost", "5", "--reason", "x"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1 and "No user with the login 'ghost'" in result.output


def test_grant_adds_an_admin_grant_with_the_reason_and_a_fresh_key_each_time(app, make_user):
    user = make_user("alice", balance=100)
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["credits", "grant", "alice", "250", "--reason", "Thanks for the bug report"])
        assert result.exit_code == 0, result.output
        assert "+250 credits" in result.output
    assert "balance now 600" in result.output
    grants = entries_of(app, user.id)[1:]
    assert [(delta, reason) for delta, reason, _, _ in grants] == [(250, "admin_grant"), (250, "admin_grant")]
    assert grants[0][2] == {"note": "Thanks for the bug report", "source": "cli"}
    assert grants[0][3] != grants[1][3] and grants[0][3].startswith("admin:")
    assert runner.invoke(args=["credits", "balance", "alice"]).output == "600\n"


def test_grant_with_an_idempotency_key_posts_once(app, make_user):
    user = make_user("alice", balance=0)
    runner = app.test_cli_runner()
    args = ["credits", "grant", "alice", "40", "--reason", "outage", "--idempotency-key", "outage-2026-11"]
    assert runner.invoke(args=args).exit_code == 0
    again = runner.invoke(args=args)
    assert again.exit_code == 0 and "Nothing changed" in again.output
    assert [delta for delta, *_ in entries_of(app, user.id)] == [40]


def test_negative_grant_is_an_adjustment_that_stops_at_zero(app, make_user):
    user = make_user("alice", balance=70)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["credits", "grant", "alice", "-100", "--reason", "chargeback"])
    assert result.exit_code == 0, result.output
    assert "-70 credits (asked -100; stopped at a zero balance), balance now 0" in result.output
    delta, reason, meta, _ = entries_of(app, user.id)[-1]
    assert (delta, reason, meta["requested_delta"]) == (-70, "adjustment", -100)
    assert runner.invoke(args=["credits", "balance", "alice"]).output == "0\n"


def test_grant_refuses_zero_an_empty_reason_and_non_numbers(app, make_user):
    user = make_user("alice", balance=5)
    runner = app.test_cli_runner()
    zero = runner.invoke(args=["credits", "grant", "alice", "0", "--reason", "nothing"])
    assert zero.exit_code == 1 and "zero" in zero.output
    blank = runner.invoke(args=["credits", "grant", "alice", "5", "--reason", "   "])
    assert blank.exit_code == 1 and "Say why" in blank.output
    missing = runner.invoke(args=["credits", "grant", "alice", "5"])
    assert missing.exit_code == 2 and "--reason" in missing.output
    word = runner.invoke(args=["credits", "grant", "alice", "lots", "--reason", "x"])
    assert word.exit_code == 2
    assert len(entries_of(app, user.id)) == 1


def test_reconcile_is_clean_then_lists_users_whose_balance_or_held_drifted(app, make_user):
    alice, bob = make_user("alice", balance=100), make_user("bob", balance=50)
    with app.app_context():
        credits.place_hold(db.session, user_id=bob.id, amount=20, idempotency_key="h")
        db.session.remove()
    runner = app.test_cli_runner()
    clean = runner.invoke(args=["credits", "reconcile"])
    assert clean.exit_code == 0 and "All balances match" in clean.output

    with app.app_context():
        db.session.execute(CreditBalance.__table__.update().where(CreditBalance.user_id == alice.id).values(balance=90))
        db.session.execute(CreditBalance.__table__.update().where(CreditBalance.user_id == bob.id).values(held=0))
        db.session.commit()
        db.session.remove()
    drifted = runner.invoke(args=["credits", "reconcile"])
    assert drifted.exit_code == 1
    assert f"{alice.id}\talice\tbalance 90 but ledger sums to 100" in drifted.output
    assert f"{bob.id}\tbob\theld 0 but active holds sum to 20" in drifted.output


def test_sweep_releases_expired_holds_and_reports_the_count(app, make_user):
    user = make_user("alice", balance=100)
    with app.app_context():
        stale_id = credits.place_hold(db.session, user_id=user.id, amount=30, idempotency_key="stale").id
        credits.place_hold(db.session, user_id=user.id, amount=20, idempotency_key="live")
        db.session.execute(
            CreditHold.__table__.update().where(CreditHold.id == stale_id).values(expires_at=utcnow() - timedelta(minutes=1))
        )
        db.session.commit()
        db.session.remove()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["credits", "sweep"])
    assert result.exit_code == 0 and "expired holds released: 1" in result.output
    assert "expired holds released: 0" in runner.invoke(args=["credits", "sweep"]).output
    with app.app_context():
        assert db.session.get(CreditBalance, user.id).held == 20
        assert db.session.get(CreditHold, stale_id).status == "expired"
        db.session.remove()
    assert runner.invoke(args=["credits", "reconcile"]).exit_code == 0


def test_sweep_fails_abandoned_replies_before_it_releases_holds(app, monkeypatch):
    """An abandoned reply settles its hold for what it produced; releasing holds first would free it unpaid."""
    from app.services import credits, sweeps

    calls = []
    monkeypatch.setattr(sweeps, "sweep_stale_generations", lambda s, **kw: calls.append("replies") or 3)
    monkeypatch.setattr(credits, "sweep_expired_holds", lambda s: calls.append("holds") or 2)
    result = app.test_cli_runner().invoke(args=["credits", "sweep"])
    assert result.exit_code == 0, result.output
    assert "abandoned replies marked failed: 3" in result.output and "expired holds released: 2" in result.output
    assert calls == ["replies", "holds"]
