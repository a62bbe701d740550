"""A GitHub App, for repository access without the person's broad OAuth scope.

The app proves itself with a JWT signed RS256 by its private key (`iss` = the app id, valid at most 10
minutes: GitHub refuses longer ones), and with that JWT asks for an *installation token*: a token valid
for an hour on the repositories the person chose when they installed the app. Calls:

- `GET /repos/{owner}/{repo}/installation`: which installation covers a repository (404: none);
- `GET /app/installations`: every installation of the app (to list a person's repositories);
- `POST /app/installations/{id}/access_tokens`: a fresh installation token and its `expires_at`;
- `GET /installation/repositories` (with an installation token): the repositories it covers;
- `GET /repos/{owner}/{repo}/collaborators/{login}/permission` (installation token): what a person may
  do in a repository of an installation that is not their own account's.

Nothing here caches or stores tokens: `app/services/publish/app_access.py` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import jwt

from app.providers.github.errors import GithubNotFound
from app.providers.github.http import GithubHttp
from app.providers.github.repos import GithubRepoClient
from config import GITHUB_DOTCOM

# GitHub refuses app JWTs that live longer than 10 minutes; `iat` is back-dated for clock drift.
APP_JWT_TTL_S = 9 * 60
APP_JWT_BACKDATE_S = 60
INSTALLATION_REPOS_PER_PAGE = 100


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    private_key: str  # PEM
    slug: str

    def __repr__(self) -> str:  # never print the key
        return f"AppCredentials(app_id={self.app_id!r}, slug={self.slug!r})"


@dataclass(frozen=True)
class Installation:
    id: int
    account_login: str
    account_id: int


@dataclass(frozen=True)
class InstallationToken:
    token: str
    expires_at: float  # epoch seconds

    def __repr__(self) -> str:
        return f"InstallationToken(expires_at={self.expires_at!r})"


def app_jwt(credentials: AppCredentials, *, now: float | None = None) -> str:
    """The app's JWT (RS256), valid `APP_JWT_TTL_S` from `now`."""
    issued = int(now if now is not None else time.time()) - APP_JWT_BACKDATE_S
    payload = {"iat": issued, "exp": issued + APP_JWT_BACKDATE_S + APP_JWT_TTL_S, "iss": str(credentials.app_id)}
    return jwt.encode(payload, credentials.private_key, algorithm="RS256")


def install_url(github_url: str, slug: str) -> str:
    """Where a person installs the app (or adds repositories to it): github.com's `/apps/{slug}`, GitHub
    Enterprise Server's (and the sandbox's) `/github-apps/{slug}`."""
    base = github_url.rstrip("/")
    if base == GITHUB_DOTCOM:
        return f"{GITHUB_DOTCOM}/apps/{slug}/installations/new"
    return f"{base}/github-apps/{slug}/installations/new"


def _parse_expiry(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _installation(item: dict) -> Installation:
    account = item.get("account") or {}
    return Installation(id=int(item["id"]), account_login=str(account.get("login") or ""),
                        account_id=int(account.get("id") or 0))


class GithubAppClient:
    """The app's own API calls, authenticated by its JWT (a fresh one per client). Not thread-safe."""

    def __init__(self, *, api_url: str, credentials: AppCredentials, timeout_s: float) -> None:
        self._http = GithubHttp(api_url=api_url, token="", timeout_s=timeout_s)
        # An app JWT goes as a Bearer token (github3's `token` scheme is for OAuth and installation tokens).
        self._http.session.headers["Authorization"] = f"Bearer {app_jwt(credentials)}"

    @property
    def requests_made(self) -> int:
        return self._http.requests_made

    def installation_for_repo(self, full_name: str) -> Installation | None:
        """The installation covering `full_name`, or None when the app is not installed on it."""
        try:
            data = self._http.call_json("find the app's installation", "GET",
                                        self._http.url("repos", full_name, "installation"))
        except GithubNotFound:
            return None
        return _installation(data)

    def installations(self) -> list[Installation]:
        data = self._http.call_json("list the app's installations", "GET", self._http.url("app", "installations"),
                                    params={"per_page": "100"})
        return [_installation(item) for item in data]

    def mint_token(self, installation_id: int) -> InstallationToken:
        """A new installation token. Creating one is not idempotent on GitHub's side, but an extra token
        is harmless (it expires), so a failed attempt may be retried."""
        data = self._http.call_json(
            "get an installation token", "POST",
            self._http.url("app", "installations", str(installation_id), "access_tokens"), expected=201)
        return InstallationToken(token=str(data["token"]), expires_at=_parse_expiry(str(data["expires_at"])))


def installation_repositories(client: GithubRepoClient) -> list[dict]:
    """The repositories an installation token covers (first 100), GitHub's repository objects."""
    http = client._http  # noqa: SLF001 - same package
    data = http.call_json("list the repositories you gave the app", "GET", http.url("installation", "repositories"),
                          params={"per_page": str(INSTALLATION_REPOS_PER_PAGE)})
    return list(data.get("repositories") or [])


def collaborator_permission(client: GithubRepoClient, full_name: str, login: str) -> str:
    """`admin`, `write`, `read` or `none`: what `login` may do in `full_name` (installation token)."""
    http = client._http  # noqa: SLF001
    try:
        data = http.call_json("check your access to the repository", "GET",
                              http.url("repos", full_name, "collaborators", login, "permission"))
    except GithubNotFound:
        return "none"
    return str(data.get("permission") or "none")
