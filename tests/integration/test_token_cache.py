"""The per-process cache of bearer token look-ups: a repeat call asks the database nothing about the token,
a revocation here is refused at once, one elsewhere within the cache's seconds, expiry always at once, and
the cache stays bounded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, update

from app.errors import Unauthenticated
from app.models import ApiToken
from app.models.base import utcnow
from app.runtime import token_cache
from app.services import api_tokens
from app.services.accounts import operators


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    # Identity: the embedded default must refuse a revoked or expired token exactly as MariaDB does.
    return app if request.param == "mariadb" else sqlite_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(token_cache, "CACHE", token_cache.TokenCache(ttl_s=5.0, capacity=100, clock=fake))
    return fake


def token_selects(session, call) -> int:
    """How many statements reading `api_tokens` ran during `call()`."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "api_tokens" in statement:
            seen.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(seen)


def test_a_repeat_look_up_is_answered_from_the_cache_with_the_same_user(app, make_user, db_session, clock):
    user = make_user("ada")
    plain = api_tokens.create_token(db_session, user_id=user.id, name="ci").plaintext
    first = api_tokens.authenticate(db_session, plain)
    expected = (first.user.id, "ada", first.token_id, "write")
    db_session.commit()
    db_session.expunge_all()
    assert token_selects(db_session, lambda: api_tokens.authenticate(db_session, plain)) == 0
    again = api_tokens.authenticate(db_session, plain)
    assert (again.user.id, again.user.login, again.token_id, again.scope) == expected
    assert again.user in db_session  # adopted by this session, usable like a loaded row


def test_a_token_revoked_in_this_process_is_refused_at_once(app, make_user, db_session, clock):
    user = make_user()
    created = api_tokens.create_token(db_session, user_id=user.id, name="ci")
    api_tokens.authenticate(db_session, created.plaintext)
    api_tokens.revoke_token(db_session, user_id=user.id, token_id=created.token.id)
    with pytest.raises(Unauthenticated):
        api_tokens.authenticate(db_session, created.plaintext)


def test_a_token_revoked_elsewhere_is_refused_once_the_cache_entry_is_older_than_its_ttl(
    app, make_user, db_session, clock
):
    user = make_user()
    created = api_tokens.create_token(db_session, user_id=user.id, name="ci")
    api_tokens.authenticate(db_session, created.plaintext)
    # Another process revokes it: this process's cache does not hear of it.
    db_session.execute(update(ApiToken).where(ApiToken.id == created.token.id).values(revoked_at=utcnow()))
    db_session.commit()
    clock.now += 4.9
    api_tokens.authenticate(db_session, created.plaintext)  # within the documented lag
    clock.now += 0.2
    with pytest.raises(Unauthenticated):
        api_tokens.authenticate(db_session, created.plaintext)


def test_an_expired_token_is_refused_even_while_cached(app, make_user, db_session, clock, monkeypatch):
    user = make_user()
    plain = api_tokens.create_token(db_session, user_id=user.id, name="ci", expires_in_days=1).plaintext
    api_tokens.authenticate(db_session, plain)
    later = utcnow() + timedelta(days=1, seconds=1)
    monkeypatch.setattr(api_tokens, "utcnow", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        api_tokens.authenticate(db_session, plain)


def test_an_expired_token_is_never_cached(app, make_user, db_session, clock):
    user = make_user()
    created = api_tokens.create_token(db_session, user_id=user.id, name="ci", expires_in_days=1)
    db_session.execute(update(ApiToken).where(ApiToken.id == created.token.id)
                       .values(expires_at=utcnow() - timedelta(seconds=1)))
    db_session.commit()
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="expired"):
            api_tokens.authenticate(db_session, created.plaintext)
    assert len(token_cache.CACHE) == 0


def test_disabling_the_account_in_this_process_refuses_its_cached_tokens(app, make_user, db_session, clock):
    user = make_user("bob")
    plain = api_tokens.create_token(db_session, user_id=user.id, name="ci").plaintext
    api_tokens.authenticate(db_session, plain)
    operators.disable_user(db_session, "bob")
    with pytest.raises(Unauthenticated):
        api_tokens.authenticate(db_session, plain)


def test_the_cache_is_bounded_and_drops_the_least_recently_used():
    fake = Clock()
    cache = token_cache.TokenCache(ttl_s=5.0, capacity=3, clock=fake)

    def entry(n: int) -> token_cache.CachedToken:
        return token_cache.CachedToken(token_id=n, user_id=n, scope="write", expires_at=None,
                                       last_used_at=None, user_values={})

    for n in range(3):
        cache.put(f"d{n}", entry(n))
    assert cache.get("d0") is not None  # d1 is now the least recently used
    for n in range(3, 6):
        cache.put(f"d{n}", entry(n))
    assert len(cache) == 3
    assert [cache.get(f"d{n}") is not None for n in range(6)] == [False, False, False, True, True, True]
    fake.now += 5.0
    assert cache.get("d5") is None and len(cache) == 2  # expired entries go when read

