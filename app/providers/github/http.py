"""How Sorya talks to the GitHub REST API through github3.py: where it lives, one github3 client (and
its session) per token, one retry policy, and one translation of github3's exceptions into the errors
of `errors.py`.

Where the API lives (shared/CONTRACT.md): `https://api.github.com` for `GITHUB_URL=https://github.com`
(`github3.GitHub`), `{GITHUB_URL}/api/v3` for anything else (GitHub Enterprise Server, the sandbox;
`github3.GitHubEnterprise`, which appends `/api/v3` itself).

The retry policy, the same for every call (`GithubHttp.call`):
- 403/429 with `X-RateLimit-Remaining: 0` or `Retry-After`: rate limited. Sleep until the reset and try
  again when that is within `rate_limit_max_wait_s`, else `GithubRateLimited` saying when to retry. A
  rate-limited request was not processed, so waiting and retrying is safe for every step.
- 5xx, a dropped connection, a timeout: retried with jittered exponential backoff, up to `max_attempts`,
  only for idempotent steps (reads; blobs and trees, which are content-addressed; commits with an explicit
  author date; a ref update to a given sha). Creating a repository, a branch or a file through the
  Contents API is never retried blindly.
github3 wraps requests' exceptions (`ConnectionError`, `TransportError`) and turns answers of 400 or
above into its own (`AuthenticationFailed`, `ForbiddenError`, `NotFoundError`, `UnprocessableEntity`,
`ServerError`, ...), each carrying the answer; the retry decision (`GithubHttp.retry_after`) and the
translation (`translate`) read those, and nothing else does.
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
from typing import Any, TypeVar

import github3
import requests
from github3 import exceptions as gh_errors
from github3.session import GitHubSession
from requests.adapters import HTTPAdapter

from app.providers.github.errors import (
    GithubError,
    GithubInstallationTokenRefused,
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
# github3 logs every URL it builds and every answer at INFO, and request bodies (file contents) at DEBUG;
# Sorya logs each step itself, so the library keeps to warnings.
logging.getLogger("github3").setLevel(logging.WARNING)

GITHUB_DOTCOM_API = "https://api.github.com"
ENTERPRISE_API_PATH = "/api/v3"
API_VERSION = "2022-11-28"
DEFAULT_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 3
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 4.0
# Waiting longer than this inside a push would hold the person's request (or a worker) for too long.
RATE_LIMIT_MAX_WAIT_S = 20.0
MAX_RATE_LIMIT_WAITS = 2
REPO_SCOPE_PRIVATE = "repo"
REPO_SCOPE_PUBLIC_ONLY = "public_repo"
REPO_SCOPES = (REPO_SCOPE_PRIVATE, REPO_SCOPE_PUBLIC_ONLY)  # either one reaches repositories

T = TypeVar("T")


def api_url_for(github_url: str) -> str:
    """The REST API's base for a `GITHUB_URL`: the one rule of the contract."""
    base = github_url.rstrip("/")
    return GITHUB_DOTCOM_API if base == GITHUB_DOTCOM else f"{base}{ENTERPRISE_API_PATH}"


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


class CountingAdapter(HTTPAdapter):
    """The github3 session's one transport adapter: it counts every request it sends, timeouts included
    (github3's `request_counter` misses those), and retries nothing itself: urllib3 retries would hide
    failures from the one retry policy, `GithubHttp.call`."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.sent = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent += 1
        return self.transmit(request, **kwargs)

    def transmit(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        return super().send(request, **kwargs)


def github_client(api_url: str, token: str, *, timeout_s: float, adapter: HTTPAdapter) -> github3.GitHub:
    """github3's client for an API base given by `api_url_for`, on a `GitHubSession` that speaks GitHub's
    documented JSON as "Sorya", with the timeouts and the one adapter.

    `github3.GitHub` serves api.github.com; `github3.GitHubEnterprise(root)` appends `/api/v3` to its root,
    which is the contract's layout for every other `GITHUB_URL`, so the two agree by construction and a
    base that does not follow the rule is refused rather than silently rewritten.
    """
    session = GitHubSession(default_connect_timeout=min(CONNECT_TIMEOUT_S, timeout_s),
                            default_read_timeout=timeout_s)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # github3 asks for its `full+json` media type and names itself; Sorya asks for the JSON GitHub
    # documents today, at a pinned API version, under its own name.
    session.headers.update({
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "Sorya",
    })
    if api_url == GITHUB_DOTCOM_API:
        return github3.GitHub(token=token, session=session)
    if not api_url.endswith(ENTERPRISE_API_PATH):
        raise ValueError(f"{api_url} is not a GitHub API base (see api_url_for).")
    return github3.GitHubEnterprise(api_url.removesuffix(ENTERPRISE_API_PATH), token=token, session=session)


class GithubHttp:
    """One person's GitHub API through github3.py, reached with their OAuth token. Not thread-safe: one per
    push or sign-in.

    `gh` is the github3 client; every call goes through `call` (the retry policy and the translation).
    `request` is for the few calls github3 has no method for (or only on an object that costs a request
    to build): it goes through the same github3 session and fails with github3's exceptions, so one
    policy and one translation cover both."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        rate_limit_max_wait_s: float = RATE_LIMIT_MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
        installation_id: int | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # Set when `token` is a GitHub App installation token: a 401 then says nothing of the person's
        # own sign-in (see `GithubInstallationTokenRefused`).
        self.installation_id = installation_id
        self.max_attempts = max(1, max_attempts)
        self.rate_limit_max_wait_s = rate_limit_max_wait_s
        self.adapter = CountingAdapter()
        self.gh = github_client(self.api_url, token, timeout_s=timeout_s, adapter=self.adapter)
        self.session: GitHubSession = self.gh.session
        self._sleep = sleep

    @property
    def requests_made(self) -> int:
        """Requests sent, retries included."""
        return self.adapter.sent

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> GithubHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, *parts: str) -> str:
        return "/".join([self.api_url, *(p.strip("/") for p in parts)])

    def request(self, method: str, url: str, *, expected: int | tuple[int, ...] = 200,
                **kwargs: Any) -> requests.Response:
        """One request through github3's session, failing as github3's own methods do
        (`models.GitHubCore._request` and `_json`): `ConnectionError`/`TransportError` when no answer came,
        `exceptions.error_for(answer)` for an answer of 400 or above."""
        try:
            response = self.session.request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise gh_errors.ConnectionError(exc) from exc
        except requests.RequestException as exc:
            raise gh_errors.TransportError(exc) from exc
        if response.status_code >= 400:
            raise gh_errors.error_for(response)
        if response.status_code not in (expected if isinstance(expected, tuple) else (expected,)):
            raise gh_errors.UnexpectedResponse(response)
        return response

    def request_json(self, method: str, url: str, *, expected: int = 200, **kwargs: Any) -> Any:
        response = self.request(method, url, expected=expected, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise gh_errors.UnexpectedResponse(response) from exc

    def call_json(self, step: str, method: str, url: str, *, expected: int = 200, idempotent: bool = True,
                  **kwargs: Any) -> Any:
        """`request_json` under `call`: one call github3 has no method for, with the one policy."""
        return self.call(step, lambda: self.request_json(method, url, expected=expected, **kwargs),
                         idempotent=idempotent)

    def call(self, step: str, operation: Callable[[], T], *, idempotent: bool = True) -> T:
        """`operation` (github3 calls, or `request`) with the retry policy of the module docstring; its
        result, or a `GithubError` from `translate`.

        `step` says what Sorya was doing, in words for the person ("read the branch")."""
        attempt = rate_waits = 0
        while True:
            attempt += 1
            try:
                return operation()
            except gh_errors.GitHubException as exc:
                retry = self.retry_after(step, exc, attempt=attempt, rate_waits=rate_waits, idempotent=idempotent)
                if retry is None:
                    error = translate(step, exc)
                    if self.installation_id is not None and isinstance(error, GithubTokenRevoked):
                        error = GithubInstallationTokenRefused(
                            f"GitHub refused the Sorya app's access while Sorya tried to {step} (the app may "
                            "have been removed from the repository). Try again; if it persists, reinstall "
                            "the app on the repository.", installation_id=self.installation_id)
                    raise error from exc
                rate_limited_wait, delay = retry
                if rate_limited_wait:
                    rate_waits += 1
                    attempt -= 1  # a rate-limited request was not processed: it costs no attempt
                self._sleep(delay)

    def retry_after(self, step: str, exc: gh_errors.GitHubException, *, attempt: int, rate_waits: int,
                    idempotent: bool) -> tuple[bool, float] | None:
        """The one retry decision: (whether it is a rate-limit wait, seconds to sleep) before trying `step`
        again after `exc`, or None when `exc` is final."""
        if isinstance(exc, gh_errors.TransportError):  # github3's wrapper of requests' exceptions
            if idempotent and attempt < self.max_attempts:
                log.info("github unreachable during %r (%s); retry %d", step, type(exc.exception).__name__,
                         attempt)
                return False, self._backoff_s(attempt)
            return None
        response = getattr(exc, "response", None)
        if not isinstance(response, requests.Response) or response.status_code < 400:
            return None
        wait_s = rate_limit_wait_s(response)
        if wait_s is not None:
            if wait_s <= self.rate_limit_max_wait_s and rate_waits < MAX_RATE_LIMIT_WAITS:
                log.info("github rate limited during %r; waiting %.1fs", step, wait_s)
                return True, wait_s + 0.5
            return None
        if response.status_code >= 500 and idempotent and attempt < self.max_attempts:
            log.info("github %s during %r; retry %d", response.status_code, step, attempt)
            return False, self._backoff_s(attempt)
        return None

    @staticmethod
    def _backoff_s(attempt: int) -> float:
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)


def rate_limited(step: str, wait_s: float) -> GithubRateLimited:
    seconds = max(1, int(wait_s + 0.999))
    when = datetime.fromtimestamp(time.time() + seconds, UTC).strftime("%H:%M UTC")
    minutes = max(1, round(seconds / 60))
    span = f"{seconds} seconds" if seconds < 120 else f"{minutes} minutes"
    return GithubRateLimited(
        f"GitHub's rate limit for your account was reached while Sorya tried to {step}. Try again "
        f"after {when} (in about {span}).", retry_after_s=seconds)


def translate(step: str, exc: gh_errors.GitHubException) -> GithubError:
    """The error of the family for a github3 failure during `step`: the one place github3's exceptions
    (and the answers they carry, rate-limit headers included) become Sorya's."""
    if isinstance(exc, gh_errors.TransportError):
        return GithubUnavailable(
            f"GitHub could not be reached or did not answer in time while Sorya tried to {step}. "
            "Nothing was lost; try again in a moment.", retryable=True)
    response = getattr(exc, "response", None)
    if not isinstance(response, requests.Response):
        # IncompleteResponse and friends: an answer github3 could not read into its objects.
        return GithubError(f"GitHub sent an answer Sorya could not read while it tried to {step}.")
    if response.status_code < 400:
        return GithubError(f"GitHub sent an answer Sorya could not read while it tried to {step} "
                           f"({response.status_code}).", status=response.status_code)
    wait_s = rate_limit_wait_s(response)
    if wait_s is not None:
        return rate_limited(step, wait_s)
    return translate_answer(step, response)


def translate_answer(step: str, response: requests.Response) -> GithubError:
    """The error of the family for GitHub's answer (400 or above) to `step`."""
    status = response.status_code
    message = github_message(response)
    if status == 401:
        return GithubTokenRevoked(
            "GitHub no longer accepts Sorya's access to your account (the authorisation was revoked "
            "or expired). Reconnect GitHub, then try again.", status=status)
    if status in (403, 404) and has_repo_scope(response) is False:
        missing = GithubMissingScope(
            "Sorya's access to your GitHub account does not include repositories. Reconnect GitHub "
            "and grant repository access, then try again.", status=status)
        missing.lacks_repository_scope = True
        return missing
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
