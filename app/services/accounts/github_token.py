"""The GitHub access token stored with an account: sealed, read back for calls on the user's behalf, and
marked revoked when GitHub refuses it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.crypto import DecryptionError, Keyring, decrypt_secret, encrypt_secret
from app.errors import Conflict, Forbidden
from app.models import GithubAccount
from app.models.base import utcnow

log = logging.getLogger(__name__)

GITHUB_TOKEN_PURPOSE = "github_token"
TOKEN_VALID = "valid"
TOKEN_REVOKED = "revoked"


def encrypt_github_token(keyring: Keyring, access_token: str, user_id: int) -> str:
    return encrypt_secret(keyring, access_token, purpose=GITHUB_TOKEN_PURPOSE, owner=user_id)


def github_access_token(session: Session, keyring: Keyring, user_id: int) -> str:
    """The user's GitHub access token, decrypted, for a call on their behalf.

    Raises `Conflict` when the account has no usable token (never connected, revoked, or sealed with a
    key this server no longer has): the person must reconnect GitHub.
    """
    account = session.execute(
        select(GithubAccount).where(GithubAccount.user_id == user_id)
    ).scalar_one_or_none()
    if account is None or account.token_status != TOKEN_VALID:
        raise Conflict("Reconnect GitHub from your account page: Sorya's access to your GitHub account has ended.")
    try:
        return decrypt_secret(keyring, account.access_token_encrypted, purpose=GITHUB_TOKEN_PURPOSE, owner=user_id)
    except DecryptionError as exc:
        log.error("github token of user=%s cannot be decrypted: %s", user_id, exc)
        raise Conflict("Reconnect GitHub from your account page: the stored access could not be read.") from exc


def mark_github_token_revoked(session: Session, user_id: int) -> None:
    """Record that GitHub answered 401 to the user's token. Commits; idempotent.

    Call it wherever a GitHub call on the user's behalf raises `GithubTokenRevoked`; the account page
    then says so and offers to reconnect.
    """
    session.execute(
        update(GithubAccount)
        .where(GithubAccount.user_id == user_id)
        .values(token_status=TOKEN_REVOKED, token_checked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    log.info("github token of user=%s marked revoked", user_id)


def token_check_due(account: GithubAccount, *, max_age_s: int, now: datetime | None = None) -> bool:
    """Whether the stored token's validity should be asked of GitHub again."""
    if account.token_status != TOKEN_VALID:
        return False
    checked = account.token_checked_at
    return checked is None or (now or utcnow()) - checked >= timedelta(seconds=max_age_s)


def record_token_check(session: Session, user_id: int, *, revoked: bool) -> None:
    """Store the outcome of asking GitHub about the token. Commits."""
    if revoked:
        mark_github_token_revoked(session, user_id)
        return
    session.execute(
        update(GithubAccount)
        .where(GithubAccount.user_id == user_id)
        .values(token_checked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()


def store_repository_grant(session: Session, keyring: Keyring, *, user_id: int, github_user_id: int,
                           access_token: str, scopes: tuple[str, ...]) -> None:
    """Keep the token of the person's second consent (the one that added the repository scope) and the
    scopes GitHub granted with it. Commits.

    Refuses (`Forbidden`) a consent given as another GitHub user than the one this account signs in as:
    it would let this account act on someone else's repositories."""
    account = session.execute(select(GithubAccount).where(GithubAccount.user_id == user_id)).scalar_one_or_none()
    if account is None or account.github_user_id != github_user_id:
        raise Forbidden("GitHub granted access as a different GitHub user than the one you sign in to Sorya "
                        "with. Sign out of GitHub, sign in there as your own user, then try again.")
    account.access_token_encrypted = encrypt_github_token(keyring, access_token, user_id)
    account.scopes = ",".join(scopes)
    account.token_status = TOKEN_VALID
    account.token_checked_at = utcnow()
    session.commit()
    log.info("github repository access granted by user=%s (scopes %s)", user_id, ",".join(scopes))
