"""Reaching the person's GitHub repositories: the one rule of which token a repository call uses
(`repository_token`), opened with the keyring (who may reach a project is `app.services.access`).

- **GitHub App mode** (the operator set `GITHUB_APP_*`): an installation token of the app on that
  repository (`app_access.py`); the app not installed there is `GithubAppNotInstalled` with its link.
- **OAuth mode**: the person's own token, once it holds the repository scope (`repo`, or `public_repo`
  where private repositories are off; `repo` granted at an older sign-in keeps working). Sign-in asks
  for less, so until the person grants it, `RepositoryAccessRequired` (403) asks for a second consent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.crypto import DecryptionError, decrypt_secret
from app.errors import Conflict, Forbidden
from app.models import GithubAccount
from app.providers.github import (
    REPO_SCOPES,
    GithubError,
    GithubInstallationTokenRefused,
    GithubMissingScope,
    GithubRepoClient,
    GithubTokenRevoked,
    grants_repositories,
    parse_scopes,
    repository_scope,
)
from app.services.accounts import GITHUB_TOKEN_PURPOSE, TOKEN_REVOKED, mark_github_token_revoked
from app.services.publish.app_access import app_install_url, forget_installation_token, installation_access
from app.services.publish.settings import ERROR_SCOPE_REQUIRED, ERROR_TOKEN_REVOKED, PublishSettings

log = logging.getLogger(__name__)


class RepositoryAccessRequired(Forbidden):
    """The person has not (or no longer) granted Sorya the repository scope: ask GitHub for it in a
    second consent, then come back to what they were doing. Routes add the consent's address."""

    code = "github_scope_required"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"Sorya needs access to your GitHub repositories for this (the “{scope}” permission). GitHub "
            "will ask you to allow it once, then bring you back here to finish.",
            reason=ERROR_SCOPE_REQUIRED, scope=scope)
        self.scope = scope


@dataclass(frozen=True)
class RepositoryToken:
    """A token for repository calls: the person's OAuth token, or an app installation's."""

    token: str
    installation_id: int | None = None

    def __repr__(self) -> str:  # never print the token
        return f"RepositoryToken(installation_id={self.installation_id!r})"


def github_account_for(session: Session, user_id: int) -> GithubAccount:
    account = session.execute(select(GithubAccount).where(GithubAccount.user_id == user_id)).scalar_one_or_none()
    if account is None:
        raise Conflict("Connect your GitHub account first: Sorya publishes with your own GitHub access.",
                       reason="github_not_connected")
    if account.token_status == TOKEN_REVOKED:
        raise Conflict("GitHub no longer accepts Sorya's access to your account. Reconnect GitHub, then "
                       "try again.", reason=ERROR_TOKEN_REVOKED)
    return account


def repository_token(session: Session, user_id: int, settings: PublishSettings, *,
                     full_name: str | None = None) -> RepositoryToken:
    """The token for calls on `full_name` (or on the person's repositories in general, e.g. creating
    one) on behalf of `user_id`: see the module docstring for the two modes. Reads only; commits nothing."""
    account = github_account_for(session, user_id)
    if settings.app is not None:
        if full_name is None:
            raise Conflict(
                "This Sorya uses a GitHub App for repositories: create the repository on GitHub, install "
                "the app on it, then link it here by name.", reason="github_app_link_only",
                install_url=app_install_url(settings))
        token, installation_id = installation_access(account, settings, full_name)
        return RepositoryToken(token=token, installation_id=installation_id)
    if not grants_repositories(parse_scopes(account.scopes), settings.allow_private_repos):
        raise RepositoryAccessRequired(repository_scope(settings.allow_private_repos))
    try:
        token = decrypt_secret(settings.keyring, account.access_token_encrypted,
                               purpose=GITHUB_TOKEN_PURPOSE, owner=user_id)
    except DecryptionError as exc:
        log.warning("github token of user=%s cannot be decrypted: %s", user_id, exc)
        raise Conflict("Sorya can no longer read your stored GitHub access. Reconnect GitHub, then try "
                       "again.", reason=ERROR_TOKEN_REVOKED) from exc
    return RepositoryToken(token=token)


def client_for(session: Session, user_id: int, settings: PublishSettings, *,
               full_name: str | None = None) -> GithubRepoClient:
    """A client for repository calls with `repository_token`'s token."""
    access = repository_token(session, user_id, settings, full_name=full_name)
    return GithubRepoClient(github_url=settings.github_url, token=access.token, timeout_s=settings.timeout_s,
                            installation_id=access.installation_id)


def guard_token(session: Session, user_id: int, exc: GithubError) -> None:
    """Record what a failed call says about the person's access (call it before re-raising `exc`):
    a 401 on their token marks it revoked; GitHub saying the token lacks the repository scope (its
    `X-OAuth-Scopes`, e.g. after the person narrowed it on GitHub) forgets the stored scope and raises
    `RepositoryAccessRequired`, so the second consent is asked; a refused installation token is dropped."""
    if isinstance(exc, GithubInstallationTokenRefused):
        forget_installation_token(exc.installation_id)
        return
    if isinstance(exc, GithubTokenRevoked):
        session.rollback()
        mark_github_token_revoked(session, user_id)
        return
    if isinstance(exc, GithubMissingScope) and exc.lacks_repository_scope:
        session.rollback()
        account = session.execute(select(GithubAccount).where(GithubAccount.user_id == user_id)).scalar_one()
        kept = [s for s in parse_scopes(account.scopes) if s not in REPO_SCOPES]
        session.execute(update(GithubAccount).where(GithubAccount.user_id == user_id)
                        .values(scopes=",".join(kept)).execution_options(synchronize_session=False))
        session.commit()
        log.info("github token of user=%s lacks the repository scope on GitHub; asking again", user_id)
        raise RepositoryAccessRequired(repository_scope(True)) from exc
