"""The ledger's core rules on a real database: exact balances, idempotency, holds."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.models import CreditBalance, CreditHold, LedgerEntry
from app.models.base import utcnow
from app.services import credits
from app.services.errors import InsufficientCredits


def balance_of(session, user_id):
    session.expire_all()
    row = session.get(CreditBalance, user_id)
    return (row.balance, row.held)


def ledger_sum(session, user_id):
    return session.execute(select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.user_id == user_id)).scalar()


def test_post_is_idempotent_per_key(db_session, make_user):
    user = make_user()
    first = credits.post_ledger_entry(db_session, user_id=user.id, delta=500, reason="signup", idempotency_key="signup:1")
    again = credits.post_ledger_entry(db_session, user_id=user.id, delta=500, reason="signup", idempotency_key="signup:1")
    assert first.created and not again.created and again.entry.id == first.entry.id
    assert balance_of(db_session, user.id) == (500, 0)
    assert ledger_sum(db_session, user.id) == 500


def test_charge_beyond_balance_is_refused_and_clamp_stops_at_zero(db_session, make_user):
    user = make_user(balance=100)
    with pytest.raises(InsufficientCredits):
        credits.post_ledger_entry(db_session, user_id=user.id, delta=-101, reason="chat", idempotency_key="c1")
    posting = credits.post_ledger_entry(
        db_session, user_id=user.id, delta=-250, reason="adjustment", idempotency_key="a1", allow_clamp=True
    )
    assert posting.entry.delta == -100 and posting.entry.meta["requested_delta"] == -250
    assert balance_of(db_session, user.id) == (0, 0)
    assert ledger_sum(db_session, user.id) == 0


def test_hold_then_settle_charges_usage_and_releases_the_rest(db_session, make_user):
    user = make_user(balance=1000)
    hold = credits.place_hold(db_session, user_id=user.id, amount=300, idempotency_key="hold:m1")
    assert balance_of(db_session, user.id) == (1000, 300)
    entry = credits.settle_hold(db_session, hold_id=hold.id, charge=42, idempotency_key="chat:m1", model="gpt-5")
    assert entry.delta == -42 and entry.model == "gpt-5" and entry.meta["held"] == 300
    assert balance_of(db_session, user.id) == (958, 0)
    # settling again is a no-op that returns the same entry
    again = credits.settle_hold(db_session, hold_id=hold.id, charge=42, idempotency_key="chat:m1")
    assert again.id == entry.id
    assert balance_of(db_session, user.id) == (958, 0)


def test_holds_count_against_the_available_balance(db_session, make_user):
    user = make_user(balance=100)
    credits.place_hold(db_session, user_id=user.id, amount=80, idempotency_key="h1")
    with pytest.raises(InsufficientCredits, match="20 available"):
        credits.place_hold(db_session, user_id=user.id, amount=30, idempotency_key="h2")
    assert balance_of(db_session, user.id) == (100, 80)


def test_release_and_sweep(db_session, make_user):
    user = make_user(balance=100)
    hold = credits.place_hold(db_session, user_id=user.id, amount=60, idempotency_key="h1")
    assert credits.release_hold(db_session, hold_id=hold.id) is True
    assert credits.release_hold(db_session, hold_id=hold.id) is False
    stale = credits.place_hold(db_session, user_id=user.id, amount=70, idempotency_key="h2", ttl_s=1)
    assert credits.sweep_expired_holds(db_session, now=utcnow() + timedelta(seconds=5)) == 1
    db_session.expire_all()
    assert db_session.get(CreditHold, stale.id).status == "expired"
    assert balance_of(db_session, user.id) == (100, 0)


def test_settle_never_takes_the_balance_below_zero(db_session, make_user):
    user = make_user(balance=50)
    hold = credits.place_hold(db_session, user_id=user.id, amount=50, idempotency_key="h1")
    entry = credits.settle_hold(db_session, hold_id=hold.id, charge=80, idempotency_key="chat:x")
    assert entry.delta == -50 and entry.meta["uncollected"] == 30
    assert balance_of(db_session, user.id) == (0, 0)
