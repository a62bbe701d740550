"""The GitHub OAuth web flow's rules: where it lives, which scopes it asks, what its answers mean.

github.com keeps OAuth at `https://github.com/login/oauth/*`; any other `GITHUB_URL` (GitHub Enterprise
Server, the sandbox) serves it at `{GITHUB_URL}/login/oauth/*`. The flow itself runs on Authlib's Flask
integration, bound to a request, in `app/web/github_auth.py`; this module holds what does not need a
request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.errors import UpstreamError
from app.metrics import count_provider_error
from app.providers.github.errors import PROVIDER, SignInRefused
from app.providers.github.http import REPO_SCOPE_PRIVATE, REPO_SCOPE_PUBLIC_ONLY, parse_scopes
from config import GITHUB_DOTCOM

log = logging.getLogger(__name__)

OAUTH_CLIENT_NAME = "github"
# Scopes to sign in: who the person is, nothing of their repositories. The repository scope is asked in a
# second consent, the first time they create, link or import a repository (`repository_scopes`).
SIGN_IN_SCOPES = ("read:user", "user:email")
# GitHub's authorization codes live 10 minutes; a sign-in started longer ago than that cannot finish.
OAUTH_STATE_TTL_S = 10 * 60
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 15


@dataclass(frozen=True)
class GithubGrant:
    """What the code exchange returned: the access token and the scopes GitHub granted."""

    access_token: str
    scopes: tuple[str, ...]

    def __repr__(self) -> str:  # never print the token, even in a traceback's locals
        return f"GithubGrant(scopes={self.scopes!r})"


FLOW_SIGN_IN = "sign_in"
FLOW_REPOSITORIES = "repositories"


@dataclass(frozen=True)
class SignInFlow:
    """What the person asked for when they started signing in, kept with the flow's `state`.

    `purpose` is `sign_in`, or `repositories` for the second consent of a signed-in person."""

    next_path: str | None
    remember: bool
    purpose: str = FLOW_SIGN_IN


def oauth_base_url(github_url: str) -> str:
    """Where `/login/oauth/*` lives: github.com itself, or the Enterprise/sandbox root."""
    return GITHUB_DOTCOM if github_url == GITHUB_DOTCOM else github_url


def repository_scope(allow_private_repos: bool) -> str:
    """The one scope repository work needs: `repo`, or `public_repo` where private ones are off."""
    return REPO_SCOPE_PRIVATE if allow_private_repos else REPO_SCOPE_PUBLIC_ONLY


def requested_scopes(allow_private_repos: bool) -> tuple[str, ...]:
    """What the second consent asks: the sign-in scopes again (GitHub gives the new token exactly what
    the last consent listed) plus the repository scope."""
    return (*SIGN_IN_SCOPES, repository_scope(allow_private_repos))


def grants_repositories(scopes: tuple[str, ...] | list[str], allow_private_repos: bool) -> bool:
    """Whether granted `scopes` cover repository work: `repo` always does (accounts that granted it at
    an older sign-in keep working); `public_repo` does only where private repositories are off."""
    granted = set(scopes)
    return REPO_SCOPE_PRIVATE in granted or (not allow_private_repos and REPO_SCOPE_PUBLIC_ONLY in granted)


def grant_from_token(token: dict[str, Any]) -> GithubGrant:
    """The grant in the code exchange's answer; `UpstreamError` when it holds no access token."""
    access_token = token.get("access_token")
    if not access_token:
        count_provider_error(PROVIDER)
        raise UpstreamError(PROVIDER, "GitHub finished the sign-in without an access token. Please try again.")
    return GithubGrant(access_token=access_token, scopes=parse_scopes(token.get("scope")))


def refusal_for(error: str | None) -> SignInRefused:
    """What an OAuth `error` (on the callback or the code exchange) means for the person."""
    if error == "access_denied":
        return SignInRefused(
            "denied", "You cancelled the authorization on GitHub, so you are not signed in. Nothing was created."
        )
    if error in ("bad_verification_code", "invalid_grant"):
        return SignInRefused(
            "code",
            "GitHub did not accept this sign-in code: it was already used or has expired. "
            "Nothing was created; please sign in again.",
        )
    log.warning("github: OAuth error %s", error)
    return SignInRefused(
        "code", "GitHub refused the sign-in. Nothing was created; please try again."
    )
