"""Who a GitHub token belongs to, and whether it still works: the sign-in's identity calls, through
github3 (`gh.me()`, `gh.emails()`).

Same github3 session, retry policy and errors as every other GitHub call (`http.py`), with two differences a
person waiting on a page needs: no rate-limit waits (the error says when to retry instead), and
`check_token` does not retry at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.errors import UpstreamError
from app.metrics import count_provider_error
from app.providers.github.errors import PROVIDER, GithubTokenRevoked
from app.providers.github.http import GithubHttp, parse_scopes

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 15
CHECK_TIMEOUT_S = 5


@dataclass(frozen=True)
class GithubIdentity:
    """A GitHub user: `id` is stable, `login` can be renamed, `email` is primary and verified or None."""

    id: int
    login: str
    name: str
    email: str | None


def fetch_identity(access_token: str, *, api_url: str) -> GithubIdentity:
    """The token's user and their primary verified email (None when there is none or it is hidden).

    A failure to read the emails (missing scope, a 5xx) leaves the email None rather than failing the
    sign-in: the email is optional, the identity is not.
    """
    with GithubHttp(api_url=api_url, token=access_token, timeout_s=READ_TIMEOUT_S, rate_limit_max_wait_s=0) as api:
        me = api.call("read your GitHub account", api.gh.me)
        user: dict[str, Any] = me.as_dict() if me is not None else {}
        try:
            emails = api.call("read your GitHub emails", lambda: [e.as_dict() for e in api.gh.emails()])
        except GithubTokenRevoked:
            raise
        except UpstreamError as exc:
            log.info("github: emails unavailable for user %s: %s", user.get("id"), exc.message)
            emails = []
    try:
        github_user_id = int(user["id"])
        login = str(user["login"])
    except (KeyError, TypeError, ValueError) as exc:
        count_provider_error(PROVIDER)
        raise UpstreamError(PROVIDER, "GitHub answered without a user id and login.") from exc
    return GithubIdentity(
        id=github_user_id, login=login, name=str(user.get("name") or ""), email=primary_verified_email(emails)
    )


def primary_verified_email(emails: Any) -> str | None:
    if not isinstance(emails, list):
        return None
    for entry in emails:
        if isinstance(entry, dict) and entry.get("primary") and entry.get("verified") and entry.get("email"):
            return str(entry["email"])
    return None


def check_token(access_token: str, *, api_url: str, read_timeout_s: float = CHECK_TIMEOUT_S) -> tuple[str, ...]:
    """Ask GitHub whether the token still works (one attempt: a page waits on it).

    Returns the scopes GitHub reports; raises `GithubTokenRevoked` on 401, another `GithubError` otherwise.
    """
    with GithubHttp(api_url=api_url, token=access_token, timeout_s=read_timeout_s, max_attempts=1,
                    rate_limit_max_wait_s=0) as api:
        # github3's `me()` keeps the user, not the answer's headers, and the scopes are a header.
        response = api.call("check your GitHub access", lambda: api.request("GET", api.url("user")))
        return parse_scopes(response.headers.get("X-OAuth-Scopes"))
