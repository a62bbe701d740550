"""Publishing with the person's own GitHub access, opened with the keyring (who may reach a project is
`app.services.access`)."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.crypto import DecryptionError, decrypt_secret
from app.errors import Conflict
from app.models import GithubAccount
from app.providers.github import GithubError, GithubRepoClient, GithubTokenRevoked
from app.services.accounts import GITHUB_TOKEN_PURPOSE, TOKEN_REVOKED, mark_github_token_revoked
from app.services.publish.settings import ERROR_TOKEN_REVOKED, PublishSettings

log = logging.getLogger(__name__)


def github_account_for(session: Session, user_id: int) -> GithubAccount:
    account = session.execute(select(GithubAccount).where(GithubAccount.user_id == user_id)).scalar_one_or_none()
    if account is None:
        raise Conflict("Connect your GitHub account first: Sorya publishes with your own GitHub access.",
                       reason="github_not_connected")
    if account.token_status == TOKEN_REVOKED:
        raise Conflict("GitHub no longer accepts Sorya's access to your account. Reconnect GitHub, then "
                       "try again.", reason=ERROR_TOKEN_REVOKED)
    return account


def client_for(session: Session, user_id: int, settings: PublishSettings) -> GithubRepoClient:
    account = github_account_for(session, user_id)
    try:
        token = decrypt_secret(settings.keyring, account.access_token_encrypted,
                               purpose=GITHUB_TOKEN_PURPOSE, owner=user_id)
    except DecryptionError as exc:
        log.warning("github token of user=%s cannot be decrypted: %s", user_id, exc)
        raise Conflict("Sorya can no longer read your stored GitHub access. Reconnect GitHub, then try "
                       "again.", reason=ERROR_TOKEN_REVOKED) from exc
    return GithubRepoClient(github_url=settings.github_url, token=token, timeout_s=settings.timeout_s)


def guard_token(session: Session, user_id: int, exc: GithubError) -> None:
    if isinstance(exc, GithubTokenRevoked):
        session.rollback()
        mark_github_token_revoked(session, user_id)

