"""Personal API tokens: `Authorization: Bearer sorya_...` for scripts.

Guarantees:
- A token is `sorya_` followed by 43 characters of URL-safe randomness (256 bits). Only its SHA-256 is
  stored; the token itself is returned once, by `create_token`, and never written anywhere.
- `authenticate` finds the token by its hash (a unique index), then compares in constant time; a
  revoked token, or a token of a disabled account, authenticates nobody.
- `last_used_at` is written at most once per `LAST_USED_RESOLUTION_S` per token, with a conditional
  UPDATE, so a script making hundreds of calls a minute causes at most one write a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.models import ApiToken, User
from app.models.base import utcnow
from app.services.errors import Conflict, InvalidRequest, NotFound

log = logging.getLogger(__name__)

TOKEN_PREFIX = "sorya_"
TOKEN_RANDOM_BYTES = 32
# "sorya_" plus six characters: enough to tell tokens apart in a list, far too few to guess the rest.
DISPLAY_PREFIX_CHARS = len(TOKEN_PREFIX) + 6
MAX_TOKEN_CHARS = 200
MAX_TOKEN_NAME_CHARS = 100
MAX_ACTIVE_TOKENS_PER_USER = 50
LAST_USED_RESOLUTION_S = 60


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


def create_token(session: Session, *, user_id: int, name: str) -> CreatedToken:
    """Create a token for `user_id` named `name`. Commits. Not idempotent: each call is a new token."""
    clean_name = clean_token_name(name)
    active = session.execute(
        select(func.count()).select_from(ApiToken).where(
            ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)
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
    )
    session.add(token)
    session.commit()
    log.info("api token created: user=%s token=%s", user_id, token.id)
    return CreatedToken(token=token, plaintext=plaintext)


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    """The user's active tokens, newest first."""
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
        log.info("api token revoked: user=%s token=%s", user_id, token.id)
    return token


def authenticate(session: Session, presented: str) -> User | None:
    """The active user `presented` belongs to, or None. May commit (the throttled last-used write)."""
    if not presented.startswith(TOKEN_PREFIX) or len(presented) > MAX_TOKEN_CHARS:
        return None
    digest = hash_token(presented)
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == digest)
    ).first()
    if row is None:
        return None
    token, user = row
    # The index lookup already matched; comparing again in constant time costs nothing and keeps the
    # check independent of how the database compares strings.
    if not hmac.compare_digest(token.token_hash, digest) or token.revoked_at is not None or not user.is_active:
        return None
    touch_last_used(session, token)
    return user


def touch_last_used(session: Session, token: ApiToken) -> bool:
    """Record use, at most once per `LAST_USED_RESOLUTION_S`. Commits when it writes; True if it wrote.

    The WHERE clause repeats the age check, so concurrent requests with the same token write once.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=LAST_USED_RESOLUTION_S)
    if token.last_used_at is not None and token.last_used_at >= cutoff:
        return False
    result = session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token.id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < cutoff),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount)
