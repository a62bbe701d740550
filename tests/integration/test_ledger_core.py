"""The ledger's core rules on a real database: exact balances, idempotency, holds."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.errors import InsufficientCredits, NotFound
from app.models import CreditBalance, CreditHold, LedgerEntry, User
from app.models.base import utcnow
from app.services import credits
from tests.sql_helpers import statements_on


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


def test_a_users_sweep_releases_their_overdue_holds_and_costs_no_query_when_nothing_is_held(db_session, make_user):
    user, other = make_user(balance=100), make_user(balance=100)
    stale = credits.place_hold(db_session, user_id=user.id, amount=70, idempotency_key="h-user", ttl_s=1)
    theirs = credits.place_hold(db_session, user_id=other.id, amount=10, idempotency_key="h-other", ttl_s=1)
    later = utcnow() + timedelta(seconds=5)
    assert credits.sweep_expired_holds(db_session, now=later, user_id=user.id) == 1
    db_session.expire_all()
    assert db_session.get(CreditHold, stale.id).status == "expired"
    assert db_session.get(CreditHold, theirs.id).status == "active"  # another user's: left to the sweep job
    assert balance_of(db_session, user.id) == (100, 0)
    loaded = db_session.get(CreditBalance, user.id)  # as a signed-in request has it, with its user
    assert loaded.held == 0
    with statements_on(db_session.get_bind()) as statements:
        assert credits.sweep_expired_holds(db_session, now=later, user_id=user.id) == 0
    assert statements == []  # the balance row is in the session and shows nothing held


def test_settle_never_takes_the_balance_below_zero(db_session, make_user):
    user = make_user(balance=50)
    hold = credits.place_hold(db_session, user_id=user.id, amount=50, idempotency_key="h1")
    entry = credits.settle_hold(db_session, hold_id=hold.id, charge=80, idempotency_key="chat:x")
    assert entry.delta == -50 and entry.meta["uncollected"] == 30
    assert balance_of(db_session, user.id) == (0, 0)


def test_a_charge_cannot_spend_credits_held_for_a_reply_in_progress(db_session, make_user):
    user = make_user(balance=100)
    credits.place_hold(db_session, user_id=user.id, amount=70, idempotency_key="h1")
    with pytest.raises(InsufficientCredits) as refused:
        credits.post_ledger_entry(db_session, user_id=user.id, delta=-40, reason="chat", idempotency_key="c1")
    assert refused.value.status == 402 and refused.value.extra == {"reason": "balance", "needed": 40, "available": 30}
    assert credits.post_ledger_entry(
        db_session, user_id=user.id, delta=-30, reason="chat", idempotency_key="c2"
    ).created
    assert balance_of(db_session, user.id) == (70, 70)


def test_settle_collects_only_what_leaves_other_holds_covered(db_session, make_user):
    user = make_user(balance=100)
    first = credits.place_hold(db_session, user_id=user.id, amount=40, idempotency_key="h1")
    credits.place_hold(db_session, user_id=user.id, amount=50, idempotency_key="h2")
    # The provider reported more than the hold allowed for: 90 > the 50 not reserved by the other hold.
    entry = credits.settle_hold(db_session, hold_id=first.id, charge=90, idempotency_key="chat:1")
    assert entry.delta == -50 and entry.meta["uncollected"] == 40
    assert balance_of(db_session, user.id) == (50, 50)


def test_a_hold_expired_by_the_sweep_is_still_charged_when_the_reply_finishes(db_session, make_user):
    user = make_user(balance=500)
    hold = credits.place_hold(db_session, user_id=user.id, amount=200, idempotency_key="h1", ttl_s=1)
    assert credits.sweep_expired_holds(db_session, now=utcnow() + timedelta(seconds=5)) == 1
    assert balance_of(db_session, user.id) == (500, 0)
    entry = credits.settle_hold(db_session, hold_id=hold.id, charge=120, idempotency_key="chat:1", model="gpt-5")
    assert entry.delta == -120 and entry.meta["late"] is True
    assert balance_of(db_session, user.id) == (380, 0)
    assert credits.settle_hold(db_session, hold_id=hold.id, charge=120, idempotency_key="chat:1").id == entry.id
    assert balance_of(db_session, user.id) == (380, 0)


def test_settle_with_zero_usage_posts_nothing_and_frees_the_hold(db_session, make_user):
    user = make_user(balance=100)
    hold = credits.place_hold(db_session, user_id=user.id, amount=60, idempotency_key="h1")
    assert credits.settle_hold(db_session, hold_id=hold.id, charge=0, idempotency_key="chat:0") is None
    assert balance_of(db_session, user.id) == (100, 0)
    assert ledger_sum(db_session, user.id) == 100


def test_unknown_hold_and_bad_values_are_refused(db_session, make_user):
    user = make_user(balance=100)
    with pytest.raises(NotFound):
        credits.settle_hold(db_session, hold_id=999_999, charge=1, idempotency_key="x")
    with pytest.raises(NotFound):
        credits.release_hold(db_session, hold_id=999_999)
    with pytest.raises(TypeError):
        credits.post_ledger_entry(db_session, user_id=user.id, delta=1.5, reason="refund", idempotency_key="f")
    with pytest.raises(ValueError):
        credits.post_ledger_entry(db_session, user_id=user.id, delta=1, reason="gift", idempotency_key="g")
    with pytest.raises(ValueError):
        credits.post_ledger_entry(db_session, user_id=user.id, delta=1, reason="refund", idempotency_key="")
    with pytest.raises(ValueError):
        credits.place_hold(db_session, user_id=user.id, amount=-1, idempotency_key="neg")
    assert balance_of(db_session, user.id) == (100, 0)


def test_placing_a_hold_releases_the_users_overdue_holds_in_passing(db_session, make_user):
    user = make_user(balance=100)
    stale = credits.place_hold(db_session, user_id=user.id, amount=90, idempotency_key="crashed", ttl_s=1)
    db_session.execute(
        CreditHold.__table__.update().where(CreditHold.id == stale.id).values(expires_at=utcnow() - timedelta(minutes=1))
    )
    db_session.commit()
    hold = credits.place_hold(db_session, user_id=user.id, amount=80, idempotency_key="next")
    assert hold.amount == 80
    db_session.expire_all()
    assert db_session.get(CreditHold, stale.id).status == "expired"
    assert balance_of(db_session, user.id) == (100, 80)


def test_a_hold_sized_by_the_worst_case_reply_says_what_it_needs(db_session, make_user):
    user = make_user(balance=1000)
    price = credits.Price(10, 30)
    hold = credits.place_hold(
        db_session, user_id=user.id, amount=credits.reply_cost(1200, 8000, price), idempotency_key="hold:m7",
        message_id=7,
    )
    assert hold.amount == 12 + 240 and hold.message_id == 7
    with pytest.raises(InsufficientCredits, match="up to 1,021 credits and you have 748 available"):
        credits.place_hold(
            db_session, user_id=user.id, amount=credits.reply_cost(2000, 33_334, price), idempotency_key="hold:m8",
        )


def test_grant_credits_clamps_negative_grants_at_zero_and_keeps_the_note(db_session, make_user):
    user = make_user(balance=30)
    taken = credits.grant_credits(db_session, user_id=user.id, amount=-50, note="  chargeback\n", idempotency_key="k1")
    assert taken.entry.reason == "adjustment" and taken.entry.delta == -30
    assert taken.entry.meta == {"note": "chargeback", "source": "cli", "requested_delta": -50}
    given = credits.grant_credits(db_session, user_id=user.id, amount=25, note="sorry", idempotency_key="k2")
    assert given.entry.reason == "admin_grant" and balance_of(db_session, user.id) == (25, 0)
    with pytest.raises(ValueError):
        credits.grant_credits(db_session, user_id=user.id, amount=0, note="x", idempotency_key="k3")
    with pytest.raises(ValueError):
        credits.grant_credits(db_session, user_id=user.id, amount=5, note="   ", idempotency_key="k4")


def test_ledger_pages_are_newest_first_and_keyset_paginated(db_session, make_user):
    user, other = make_user(), make_user(balance=999)
    for number in range(7):
        credits.post_ledger_entry(db_session, user_id=user.id, delta=number + 1, reason="refund", idempotency_key=f"e{number}")
    first = credits.list_ledger_entries(db_session, user.id, limit=3)
    assert [entry.delta for entry in first.entries] == [7, 6, 5]
    second = credits.list_ledger_entries(db_session, user.id, limit=3, before=first.next_before)
    assert [entry.delta for entry in second.entries] == [4, 3, 2]
    last = credits.list_ledger_entries(db_session, user.id, limit=3, before=second.next_before)
    assert [entry.delta for entry in last.entries] == [1] and last.next_before is None
    exact = credits.list_ledger_entries(db_session, user.id, limit=7)
    assert len(exact.entries) == 7 and exact.next_before is None
    assert [entry.delta for entry in credits.iter_ledger_entries(db_session, user.id, batch_size=2)] == [7, 6, 5, 4, 3, 2, 1]
    assert all(entry.user_id == other.id for entry in credits.list_ledger_entries(db_session, other.id).entries)


def test_daily_usage_sums_chat_spending_per_day_and_model(db_session, make_user):
    user, other = make_user(balance=10_000), make_user(balance=10_000)
    today = utcnow().date()

    def charge(key, amount, model, days_ago, *, reason="chat", who=user):
        posting = credits.post_ledger_entry(db_session, user_id=who.id, delta=amount, reason=reason, idempotency_key=key, model=model)
        db_session.execute(
            LedgerEntry.__table__.update().where(LedgerEntry.id == posting.entry.id)
            .values(created_at=utcnow() - timedelta(days=days_ago))
        )
        db_session.commit()

    charge("a", -40, "gpt-5", 0)
    charge("b", -2, "gpt-5", 0)
    charge("c", -7, "gpt-5-mini", 0)
    charge("d", -9, "gpt-5", 3)
    charge("e", 5, "gpt-5", 3, reason="refund")
    charge("f", -100, "gpt-5", 30)  # outside the 30-day window
    charge("g", -11, None, 1)
    charge("h", -500, "gpt-5", 0, who=other)
    charge("i", 1000, None, 0, reason="plan_grant")

    usage = credits.daily_usage(db_session, user.id, days=30, today=today)
    assert [(item.day, item.model, item.credits) for item in usage] == [
        (today - timedelta(days=3), "gpt-5", 4),
        (today - timedelta(days=1), credits.UNKNOWN_MODEL, 11),
        (today, "gpt-5", 42),
        (today, "gpt-5-mini", 7),
    ]


def test_reconcile_finds_a_balance_or_held_that_drifted_from_the_ledger(db_session, make_user):
    honest, drifted, held_wrong = make_user(balance=100), make_user(balance=100), make_user(balance=100)
    credits.place_hold(db_session, user_id=held_wrong.id, amount=10, idempotency_key="h")
    assert credits.find_discrepancies(db_session) == []
    db_session.execute(CreditBalance.__table__.update().where(CreditBalance.user_id == drifted.id).values(balance=130))
    db_session.execute(CreditBalance.__table__.update().where(CreditBalance.user_id == held_wrong.id).values(held=0))
    db_session.commit()
    found = {item.user_id: item for item in credits.find_discrepancies(db_session)}
    assert set(found) == {drifted.id, held_wrong.id}
    assert (found[drifted.id].balance, found[drifted.id].ledger_sum) == (130, 100)
    assert (found[held_wrong.id].held, found[held_wrong.id].active_holds) == (0, 10)
    assert honest.id not in found


def test_a_hold_placed_as_new_key_still_cannot_duplicate_its_key(db_session, make_user):
    user = make_user("newkey", balance=1000)
    first = credits.place_hold(db_session, user_id=user.id, amount=100, idempotency_key="hold:fresh", new_key=True)
    # A caller wrongly claiming a new key gets the existing hold (the unique index), never a second one.
    again = credits.place_hold(db_session, user_id=user.id, amount=100, idempotency_key="hold:fresh", new_key=True)
    assert again.id == first.id
    assert db_session.scalar(select(func.count()).select_from(CreditHold).where(CreditHold.user_id == user.id)) == 1
    assert balance_of(db_session, user.id) == (1000, 100)


def test_a_hold_in_the_callers_transaction_is_kept_only_when_the_caller_commits(db_session, make_user, rows):
    user = make_user(balance=100)
    hold = credits.place_hold_in_transaction(db_session, user_id=user.id, amount=60, idempotency_key="h:tx")
    assert hold.id is not None and hold.status == "active"
    db_session.rollback()  # the caller decided not to go on: nothing of the hold remains
    assert balance_of(db_session, user.id) == (100, 0)
    assert db_session.execute(select(CreditHold)).first() is None

    credits.place_hold_in_transaction(db_session, user_id=user.id, amount=60, idempotency_key="h:tx")
    rows.expire_all()
    assert rows.get(CreditBalance, user.id).held == 0  # not committed on the caller's behalf
    db_session.commit()
    assert balance_of(db_session, user.id) == (100, 60)


def test_a_short_balance_commits_nothing_of_the_callers_transaction(db_session, make_user, rows):
    user = make_user(balance=100)
    db_session.add(User(login="pending-row", name="The caller's own change"))
    db_session.flush()
    with pytest.raises(InsufficientCredits, match="up to 101 credits and you have 100 available"):
        credits.place_hold_in_transaction(db_session, user_id=user.id, amount=101, idempotency_key="h:short")
    assert rows.execute(select(User).where(User.login == "pending-row")).first() is None
    db_session.rollback()
    assert balance_of(db_session, user.id) == (100, 0)
    assert db_session.execute(select(User).where(User.login == "pending-row")).first() is None
