"""Personal API tokens: `Authorization: Bearer sorya_...` for scripts.

Guarantees:
- A token is `sorya_` followed by 43 characters of URL-safe randomness (256 bits). Only its SHA-256 is
  stored; the token itself is returned once, by `create_token`, and never written anywhere.
- `authenticate` finds the token by its hash (a unique index), then compares in constant time; a
  revoked or expired token, or a token of a disabled account, authenticates nobody. An expired token is
  refused with its own sentence, so a script's owner knows to make a new one rather than hunt a typo.
- A token has a scope: `write` (the default) may do anything its user may do through `/api`; `read`
  may only read (`may_use_method`). It may expire, `expires_in_days` after it was made.
- A look-up is cached per process for `TOKEN_CACHE_TTL_S` seconds (`app.runtime.token_cache`): a
  revocation here is honoured on the next call, one in another process within those seconds.
- `last_used_at` is written at most once per `LAST_USED_RESOLUTION_S` per token, with a conditional
  UPDATE, so a script making hundreds of calls a minute causes at most one write a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, inspect, or_, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from app.errors import Conflict, InvalidRequest, NotFound, Unauthenticated
from app.models import ApiToken, User
from app.models.base import utcnow
from app.models.users import TOKEN_SCOPE_WRITE, TOKEN_SCOPES
from app.runtime import token_cache

log = logging.getLogger(__name__)

TOKEN_PREFIX = "sorya_"
TOKEN_RANDOM_BYTES = 32
# "sorya_" plus six characters: enough to tell tokens apart in a list, far too few to guess the rest.
DISPLAY_PREFIX_CHARS = len(TOKEN_PREFIX) + 6
MAX_TOKEN_CHARS = 200
MAX_TOKEN_NAME_CHARS = 100
MAX_ACTIVE_TOKENS_PER_USER = 50
LAST_USED_RESOLUTION_S = 60
# Longer than a year is "never" in practice; the bound also catches a mistyped --expires-days.
MAX_TOKEN_LIFETIME_DAYS = 365
# The methods a `read` token may use: they change nothing.
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
INVALID_TOKEN_MESSAGE = "The API token is not valid: it is unknown, revoked, or its account is disabled."


@dataclass(frozen=True)
class AuthenticatedToken:
    """Who a presented token acts for, and what it may do."""

    user: User
    token_id: int
    scope: str

    def may_use_method(self, method: str) -> bool:
        return self.scope == TOKEN_SCOPE_WRITE or method.upper() in READ_ONLY_METHODS


@dataclass(frozen=True)
class CreatedToken:
    """A new token row and its plain value, which exists only in this object."""

    token: ApiToken
    plaintext: str

    def __repr__(self) -> str:
        return f"CreatedToken(id={self.token.id}, prefix={self.token.display_prefix!r})"


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


def clean_token_name(raw: str | None) -> str:
    """The name a person gave a token, trimmed; control characters are refused, not silently dropped."""
    name = (raw or "").strip()
    if not name:
        raise InvalidRequest("Give the token a name, for example “CI deploys”.", fields={"name": "required"})
    if len(name) > MAX_TOKEN_NAME_CHARS:
        raise InvalidRequest(
            f"A token name has at most {MAX_TOKEN_NAME_CHARS} characters.",
            fields={"name": f"at most {MAX_TOKEN_NAME_CHARS} characters"},
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidRequest(
            "A token name cannot contain control characters.", fields={"name": "no control characters"}
        )
    return name


def check_scope(scope: str) -> str:
    if scope not in TOKEN_SCOPES:
        raise InvalidRequest(
            "A token's scope is read or write.", fields={"scope": "read or write"}
        )
    return scope


def check_lifetime_days(days: int | None) -> int | None:
    """None (never expires) or a whole number of days from 1 to `MAX_TOKEN_LIFETIME_DAYS`."""
    if days is None:
        return None
    if not 1 <= days <= MAX_TOKEN_LIFETIME_DAYS:
        raise InvalidRequest(
            f"A token expires after 1 to {MAX_TOKEN_LIFETIME_DAYS} days, or never.",
            fields={"expires": f"1 to {MAX_TOKEN_LIFETIME_DAYS} days, or never"},
        )
    return days


def create_token(
    session: Session, *, user_id: int, name: str, scope: str = TOKEN_SCOPE_WRITE,
    expires_in_days: int | None = None,
) -> CreatedToken:
    """Create a token for `user_id` named `name`, of `scope`, expiring `expires_in_days` from now (None:
    never). Commits. Not idempotent: each call is a new token. Expired and revoked tokens do not count
    against `MAX_ACTIVE_TOKENS_PER_USER`."""
    clean_name = clean_token_name(name)
    check_scope(scope)
    lifetime_days = check_lifetime_days(expires_in_days)
    now = utcnow()
    active = session.execute(
        select(func.count()).select_from(ApiToken).where(
            ApiToken.user_id == user_id,
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
    ).scalar_one()
    if active >= MAX_ACTIVE_TOKENS_PER_USER:
        raise Conflict(
            f"You already have {MAX_ACTIVE_TOKENS_PER_USER} active tokens. Revoke one you no longer use first."
        )
    plaintext = generate_token()
    token = ApiToken(
        user_id=user_id,
        name=clean_name,
        display_prefix=plaintext[:DISPLAY_PREFIX_CHARS],
        token_hash=hash_token(plaintext),
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(days=lifetime_days) if lifetime_days else None,
    )
    session.add(token)
    session.commit()
    log.info("api token created: user=%s token=%s scope=%s expires_at=%s", user_id, token.id, scope,
             token.expires_at.isoformat() if token.expires_at else "never")
    return CreatedToken(token=token, plaintext=plaintext)


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    """The user's tokens that are not revoked (expired ones included, so the page can say so), newest first."""
    return list(
        session.execute(
            select(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        ).scalars()
    )


def revoke_token(session: Session, *, user_id: int, token_id: int) -> ApiToken:
    """Revoke one of the user's tokens. Commits; idempotent. Another user's token is `NotFound`."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user_id:
        raise NotFound("There is no such token on your account.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.commit()
        token_cache.forget_token(token.id)  # refused from the next call in this process
        log.info("api token revoked: user=%s token=%s", user_id, token.id)
    return token


def authenticate(session: Session, presented: str) -> AuthenticatedToken:
    """The active user `presented` belongs to and the token's scope. May commit (the throttled last-used
    write). Raises `Unauthenticated` with a sentence for the caller: an expired token says so.

    A token looked up in the last few seconds is answered from this process's cache
    (`app.runtime.token_cache`, which says what may lag: revocation in another process, for at most
    `TOKEN_CACHE_TTL_S`); expiry is checked on every call."""
    if not presented.startswith(TOKEN_PREFIX) or len(presented) > MAX_TOKEN_CHARS:
        raise Unauthenticated(INVALID_TOKEN_MESSAGE)
    digest = hash_token(presented)
    cached = token_cache.CACHE.get(digest)
    if cached is not None:
        return _from_cache(session, cached)
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == digest)
    ).first()
    if row is None:
        raise Unauthenticated(INVALID_TOKEN_MESSAGE)
    token, user = row
    # The index lookup already matched; comparing again in constant time costs nothing and keeps the
    # check independent of how the database compares strings.
    if not hmac.compare_digest(token.token_hash, digest) or token.revoked_at is not None or not user.is_active:
        raise Unauthenticated(INVALID_TOKEN_MESSAGE)
    _refuse_expired(token.expires_at)
    cached = token_cache.CachedToken(
        token_id=token.id, user_id=user.id, scope=token.scope, expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        user_values={attr.key: getattr(user, attr.key) for attr in inspect(User).column_attrs},
    )
    authenticated = AuthenticatedToken(user=user, token_id=token.id, scope=token.scope)
    if touch_last_used(session, token):
        cached.last_used_at = utcnow()
    token_cache.CACHE.put(digest, cached)
    return authenticated


def _refuse_expired(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= utcnow():
        raise Unauthenticated(
            f"This API token expired on {expires_at:%Y-%m-%d %H:%M} UTC. Create a new one on your account page."
        )


def _from_cache(session: Session, cached: token_cache.CachedToken) -> AuthenticatedToken:
    """A cached look-up: expiry checked now; the user adopted by `session` without a query; last use
    recorded with the same throttle as an uncached call."""
    _refuse_expired(cached.expires_at)
    user = User(**cached.user_values)
    make_transient_to_detached(user)
    user = session.merge(user, load=False)
    if _last_use_is_stale(cached.last_used_at):
        _record_use(session, cached.token_id)
        # Written now by this call or a moment ago by another process: either way, not again this minute.
        cached.last_used_at = utcnow()
    return AuthenticatedToken(user=user, token_id=cached.token_id, scope=cached.scope)


def touch_last_used(session: Session, token: ApiToken) -> bool:
    """Record use, at most once per `LAST_USED_RESOLUTION_S`. Commits when it writes; True if it wrote.

    The WHERE clause repeats the age check, so concurrent requests with the same token write once.
    """
    if not _last_use_is_stale(token.last_used_at):
        return False
    return _record_use(session, token.id)


def _last_use_is_stale(last_used_at: datetime | None) -> bool:
    return last_used_at is None or last_used_at < utcnow() - timedelta(seconds=LAST_USED_RESOLUTION_S)


def _record_use(session: Session, token_id: int) -> bool:
    cutoff = utcnow() - timedelta(seconds=LAST_USED_RESOLUTION_S)
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < cutoff))
        .values(last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount)
