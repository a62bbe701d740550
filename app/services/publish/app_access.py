"""Repository access through the operator's GitHub App (`GITHUB_APP_ID`, `GITHUB_APP_PRIVATE_KEY`,
`GITHUB_APP_SLUG`): the person chooses the repositories when they install the app, and Sorya reaches
exactly those with installation tokens. Their OAuth token (sign-in scopes only) never touches a repository.

Rules:
- A repository is reachable when the app is installed on it (`GET /repos/{o}/{r}/installation`), else
  `GithubAppNotInstalled` carries the install link. The installation must be on the person's own account,
  or the person must be able to write to the repository (an installation token can reach every
  repository of the installation, whoever asks: this check is what keeps one person out of another's).
- Installation tokens live an hour; each is cached per process until `TOKEN_REFRESH_MARGIN_S` before it
  expires, sealed with the keyring (never in plaintext, never in the database), so a burst of calls
  mints one token, not one each.
"""

from __future__ import annotations

import logging
import threading
import time

from app.crypto import decrypt_secret, encrypt_secret
from app.errors import Conflict, NotFound
from app.models import GithubAccount
from app.providers.github import api_url_for
from app.providers.github.app import (
    GithubAppClient,
    Installation,
    collaborator_permission,
    install_url,
    installation_repositories,
)
from app.providers.github.archive import RepoSummary, repo_summary
from app.providers.github.repos import GithubRepoClient
from app.services.publish.settings import ERROR_APP_NOT_INSTALLED, PublishSettings

log = logging.getLogger(__name__)

# A token closer than this to its expiry is not handed out: a push or an import may run for minutes.
TOKEN_REFRESH_MARGIN_S = 5 * 60
INSTALLATION_TOKEN_PURPOSE = "github_installation_token"
WRITE_PERMISSIONS = ("admin", "maintain", "write")

_tokens: dict[tuple[str, int], tuple[str, float]] = {}  # (app id, installation) -> (sealed token, expires at)
_tokens_lock = threading.Lock()


class GithubAppNotInstalled(Conflict):
    """The app is not installed on the repository (or was removed from it): the person installs it."""

    def __init__(self, full_name: str, url: str) -> None:
        super().__init__(
            f"The Sorya GitHub App is not installed on {full_name} (or was removed from it). Install it on "
            "that repository, then try again.", reason=ERROR_APP_NOT_INSTALLED, install_url=url,
            repo_full_name=full_name)


def app_install_url(settings: PublishSettings) -> str:
    assert settings.app is not None
    return install_url(settings.github_url, settings.app.slug)


def _app_client(settings: PublishSettings) -> GithubAppClient:
    assert settings.app is not None
    return GithubAppClient(api_url=api_url_for(settings.github_url), credentials=settings.app,
                           timeout_s=settings.timeout_s)


def installation_token(app_client: GithubAppClient, installation_id: int, settings: PublishSettings,
                       *, now: float | None = None) -> str:
    """A token of the installation valid for at least `TOKEN_REFRESH_MARGIN_S`: the cached one, or a new
    one minted (and cached, sealed) when none is left."""
    assert settings.app is not None
    key = (settings.app.app_id, installation_id)
    moment = now if now is not None else time.time()
    with _tokens_lock:
        cached = _tokens.get(key)
    if cached is not None and cached[1] - TOKEN_REFRESH_MARGIN_S > moment:
        return decrypt_secret(settings.keyring, cached[0], purpose=INSTALLATION_TOKEN_PURPOSE, owner=installation_id)
    minted = app_client.mint_token(installation_id)
    sealed = encrypt_secret(settings.keyring, minted.token, purpose=INSTALLATION_TOKEN_PURPOSE, owner=installation_id)
    with _tokens_lock:
        _tokens[key] = (sealed, minted.expires_at)
    log.info("github app installation=%s token minted (expires in %ds)", installation_id,
             int(minted.expires_at - moment))
    return minted.token


def forget_installation_token(installation_id: int | None = None) -> None:
    """Drop a cached token (all of them without an id): GitHub refused it, or the app was reinstalled."""
    with _tokens_lock:
        for key in [k for k in _tokens if installation_id is None or k[1] == installation_id]:
            del _tokens[key]


def _client(settings: PublishSettings, token: str, installation_id: int) -> GithubRepoClient:
    return GithubRepoClient(github_url=settings.github_url, token=token, timeout_s=settings.timeout_s,
                            installation_id=installation_id)


def installation_access(account: GithubAccount, settings: PublishSettings, full_name: str) -> tuple[str, int]:
    """(installation token, installation id) reaching `full_name` for the person of `account`.

    Raises `GithubAppNotInstalled` (with the install link) when the app does not cover the repository,
    `NotFound` when it does but the person may not write to it."""
    app_client = _app_client(settings)
    installation = app_client.installation_for_repo(full_name)
    if installation is None:
        raise GithubAppNotInstalled(full_name, app_install_url(settings))
    token = installation_token(app_client, installation.id, settings)
    if not _is_own(installation, account):
        permission = collaborator_permission(_client(settings, token, installation.id), full_name, account.login)
        if permission not in WRITE_PERMISSIONS:
            log.info("github app: user=%s may not write to %s (%s)", account.user_id, full_name, permission)
            raise NotFound(f"GitHub has no repository {full_name} that you can write to.")
    return token, installation.id


def _is_own(installation: Installation, account: GithubAccount) -> bool:
    return installation.account_id == account.github_user_id


def app_repositories(account: GithubAccount, settings: PublishSettings) -> list[RepoSummary]:
    """The repositories the person gave the app on their own account, most recently updated first.
    (Installations on organisations are reached by name: importing checks the person's permission.)"""
    app_client = _app_client(settings)
    found: list[RepoSummary] = []
    for installation in app_client.installations():
        if not _is_own(installation, account):
            continue
        client = _client(settings, installation_token(app_client, installation.id, settings), installation.id)
        found.extend(repo_summary(item) for item in installation_repositories(client))
    found.sort(key=lambda repo: repo.updated_at, reverse=True)
    return found
