"""How Sorya talks to the GitHub REST API: where it lives, one requests session per token, one retry
policy, and one translation of GitHub's answers into the errors of `errors.py`.

Where the API lives (shared/CONTRACT.md): `https://api.github.com` for `GITHUB_URL=https://github.com`,
`{GITHUB_URL}/api/v3` for anything else (GitHub Enterprise Server, the sandbox).

The retry policy, the same for every call (`GithubHttp.call`):
- 403/429 with `X-RateLimit-Remaining: 0` or `Retry-After`: rate limited. Sleep until the reset and try
  again when that is within `rate_limit_max_wait_s`, else `GithubRateLimited` saying when to retry. A
  rate-limited request was not processed, so waiting and retrying is safe for every step.
- 5xx, a dropped connection, a timeout: retried with jittered exponential backoff, up to `max_attempts`,
  only for idempotent steps (reads; blobs and trees, which are content-addressed; commits with an explicit
  author date; a ref update to a given sha). Creating a repository, a branch or a file through the
  Contents API is never retried blindly.
The translation:
- 401: the token is revoked or expired -> `GithubTokenRevoked` (the caller marks the account).
- 404: deleted, renamed or hidden -> `GithubNotFound`, unless the token lacks the repository scope
  (GitHub answers 404 to a token that may not see a repository) -> `GithubMissingScope`.
- 409 "Git Repository is empty.": `GithubRepoEmpty`.
- 422: `GithubRejected`; 5xx after the retries: `GithubUnavailable`.
Access tokens never reach a log line or an error message.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from app.providers.github.errors import (
    GithubError,
    GithubMissingScope,
    GithubNotFound,
    GithubRateLimited,
    GithubRejected,
    GithubRepoEmpty,
    GithubTokenRevoked,
    GithubUnavailable,
)
from config import GITHUB_DOTCOM

log = logging.getLogger(__name__)

GITHUB_DOTCOM_API = "https://api.github.com"
API_VERSION = "2022-11-28"
DEFAULT_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 3
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 4.0
# Waiting longer than this inside a push would hold the person's request (or a worker) for too long.
RATE_LIMIT_MAX_WAIT_S = 20.0
MAX_RATE_LIMIT_WAITS = 2
REPO_SCOPES = ("repo", "public_repo")


def api_url_for(github_url: str) -> str:
    """The REST API's base for a `GITHUB_URL`: the one rule of the contract."""
    base = github_url.rstrip("/")
    return GITHUB_DOTCOM_API if base == GITHUB_DOTCOM else f"{base}/api/v3"


def web_url_for(github_url: str, full_name: str) -> str:
    return f"{github_url.rstrip('/')}/{full_name}"


def parse_scopes(raw: str | None) -> tuple[str, ...]:
    """GitHub lists scopes comma-separated (token answer) or comma-and-space (X-OAuth-Scopes)."""
    return tuple(s for s in (part.strip() for part in (raw or "").replace(" ", ",").split(",")) if s)


def _body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def github_message(response: requests.Response) -> str:
    """GitHub's own `message` of an answer (at most 300 characters), or "" when it sent none."""
    return str(_body(response).get("message") or "")[:300]


def github_errors(response: requests.Response) -> list[Any]:
    """The `errors` list of a 422 answer (what GitHub found invalid), or []."""
    return list(_body(response).get("errors") or [])


def rate_limit_wait_s(response: requests.Response) -> float | None:
    """Seconds until GitHub accepts requests again, or None when this answer is not a rate limit."""
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    retry_after = headers.get("Retry-After")
    if retry_after and retry_after.strip().isdigit():
        return float(retry_after)
    if headers.get("X-RateLimit-Remaining") == "0" and headers.get("X-RateLimit-Reset", "").isdigit():
        return max(0.0, float(headers["X-RateLimit-Reset"]) - time.time())
    if response.status_code == 429:
        return 60.0
    return None


def has_repo_scope(response: requests.Response) -> bool | None:
    """Whether the token may touch repositories, from `X-OAuth-Scopes`; None when GitHub did not say."""
    header = response.headers.get("X-OAuth-Scopes")
    if header is None:
        return None
    return bool(set(parse_scopes(header)) & set(REPO_SCOPES))


def github_session(token: str) -> requests.Session:
    """A requests session that speaks GitHub's documented JSON with `token`. No adapter-level retries:
    the one retry policy is `GithubHttp.call`'s."""
    session = requests.Session()
    session.headers.update({
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "Sorya",
        "Authorization": f"Bearer {token}",
    })
    return session


class GithubHttp:
    """One person's GitHub API, reached with their OAuth token. Not thread-safe: one per push or sign-in."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        rate_limit_max_wait_s: float = RATE_LIMIT_MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = (min(CONNECT_TIMEOUT_S, timeout_s), timeout_s)
        self.max_attempts = max(1, max_attempts)
        self.rate_limit_max_wait_s = rate_limit_max_wait_s
        self._session = github_session(token)
        self._sleep = sleep
        self._requests_sent = 0

    @property
    def requests_made(self) -> int:
        """Requests sent, retries included."""
        return self._requests_sent

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GithubHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, *parts: str) -> str:
        return "/".join([self.api_url, *(p.strip("/") for p in parts)])

    def call_json(self, step: str, method: str, url: str, *, expected: int = 200, idempotent: bool = True,
                  **kwargs: Any) -> Any:
        """One call with the retry policy; GitHub's decoded JSON answer, or a `GithubError`."""
        response = self.call(step, method, url, idempotent=idempotent, **kwargs)
        if response.status_code != expected:
            raise GithubError(f"GitHub answered {response.status_code} where {expected} was expected.",
                              status=response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            raise GithubError("GitHub sent an answer that is not JSON.", status=response.status_code) from exc

    def call(self, step: str, method: str, url: str, *, idempotent: bool = True, **kwargs: Any) -> requests.Response:
        """One call with the retry policy of the module docstring; an answer below 400, or a `GithubError`.

        `step` says what Sorya was doing, in words for the person ("read the branch")."""
        attempt = rate_waits = 0
        while True:
            attempt += 1
            self._requests_sent += 1
            try:
                response = self._session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                if idempotent and attempt < self.max_attempts:
                    log.info("github unreachable during %r (%s); retry %d", step, type(exc).__name__, attempt)
                    self._backoff(attempt)
                    continue
                raise GithubUnavailable(
                    f"GitHub could not be reached or did not answer in time while Sorya tried to {step}. "
                    "Nothing was lost; try again in a moment.", retryable=True) from exc
            if response.status_code < 400:
                return response
            wait_s = rate_limit_wait_s(response)
            if wait_s is not None:
                if wait_s <= self.rate_limit_max_wait_s and rate_waits < MAX_RATE_LIMIT_WAITS:
                    rate_waits += 1
                    attempt -= 1  # a rate-limited request was not processed: it costs no attempt
                    log.info("github rate limited during %r; waiting %.1fs", step, wait_s)
                    self._sleep(wait_s + 0.5)
                    continue
                raise rate_limited(step, wait_s)
            if response.status_code >= 500 and idempotent and attempt < self.max_attempts:
                log.info("github %s during %r; retry %d", response.status_code, step, attempt)
                self._backoff(attempt)
                continue
            raise translate(step, response)

    def _backoff(self, attempt: int) -> None:
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
        self._sleep(delay * (0.5 + random.random() / 2))


def rate_limited(step: str, wait_s: float) -> GithubRateLimited:
    seconds = max(1, int(wait_s + 0.999))
    when = datetime.fromtimestamp(time.time() + seconds, UTC).strftime("%H:%M UTC")
    minutes = max(1, round(seconds / 60))
    span = f"{seconds} seconds" if seconds < 120 else f"{minutes} minutes"
    return GithubRateLimited(
        f"GitHub's rate limit for your account was reached while Sorya tried to {step}. Try again "
        f"after {when} (in about {span}).", retry_after_s=seconds)


def translate(step: str, response: requests.Response) -> GithubError:
    """The error of the family for GitHub's answer (400 or above) to `step`."""
    status = response.status_code
    message = github_message(response)
    if status == 401:
        return GithubTokenRevoked(
            "GitHub no longer accepts Sorya's access to your account (the authorisation was revoked "
            "or expired). Reconnect GitHub, then try again.", status=status)
    if status in (403, 404) and has_repo_scope(response) is False:
        return GithubMissingScope(
            "Sorya's access to your GitHub account does not include repositories. Reconnect GitHub "
            "and grant repository access, then try again.", status=status)
    if status == 403:
        return GithubMissingScope(
            f"GitHub did not allow Sorya to {step} ({message or 'forbidden'}). Check that your account "
            "may write to this repository, or reconnect GitHub to grant access.", status=status)
    if status == 404:
        return GithubNotFound(
            f"GitHub could not find what Sorya needed to {step}: the repository may have been "
            "deleted, renamed or made private to you.", status=status)
    if status == 409 and "empty" in message.lower():
        return GithubRepoEmpty("The repository has no commits yet.", status=status)
    if status == 422:
        detail = message or "validation failed"
        return GithubRejected(f"GitHub refused to {step}: {detail}.", errors=github_errors(response))
    if status >= 500:
        return GithubUnavailable(
            f"GitHub answered with an error ({status}) while Sorya tried to {step}. Nothing was lost; try "
            "again in a moment.", status=status, retryable=True)
    return GithubError(f"GitHub answered {status} while Sorya tried to {step}"
                       f"{': ' + message if message else ''}.", status=status)
