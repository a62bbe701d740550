"""The GitHub repository adapter over github3.py: repositories, refs, trees, blobs and commits.

Services see small typed results (`RepoInfo`, `RemoteTree`, `CommitInfo`) and the errors below, all
subclasses of the domain's `UpstreamError("GitHub", ...)` with a sentence a person understands.

Where the API lives (shared/CONTRACT.md): `https://api.github.com` for `GITHUB_URL=https://github.com`
(`github3.GitHub`), `{GITHUB_URL}/api/v3` for anything else (`github3.GitHubEnterprise`, which appends
`/api/v3` itself).

Request economy: github3's `Repository` object costs a `GET /repos/{owner}/{name}` to build, so the Git
Data calls of a push go through the github3 client's own session and response handling (`_post`,
`_patch`, `_json`, its exception types) with URLs built from the repository's full name. A push then
costs one request per step and nothing else; `requests_made` counts every request, retries included.

Failure policy, the same for every call:
- 401: the token is revoked or expired -> `GithubTokenRevoked` (the caller marks the account).
- 403/429 with `X-RateLimit-Remaining: 0` or `Retry-After`: rate limited. Sleep until the reset and try
  again when that is within `rate_limit_max_wait_s`, else `GithubRateLimited` saying when to retry. A
  rate-limited request was not processed, so waiting and retrying is safe for every step.
- 5xx and timeouts: retried with exponential backoff, only for idempotent steps (reads; blobs and trees,
  which are content-addressed; commits with an explicit author date; a ref update to a given sha).
  Creating a repository or a file through the Contents API is never retried blindly.
- 404: the repository was deleted, renamed or hidden -> `GithubNotFound`, unless the token lacks the
  repository scope (GitHub answers 404 to a token that may not see a repository) -> `GithubMissingScope`.
- 409 "Git Repository is empty.": `GithubRepoEmpty`, which the push answers with a first commit through
  the Contents API (the Git Data API refuses to work on a repository without commits).
- 422: `GithubRejected` (`NotFastForward` for a ref update that is not a fast forward).
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import github3
import requests
from github3 import exceptions as gh_errors
from github3.session import GitHubSession

from app.providers.github_errors import GithubError, GithubTokenRevoked

log = logging.getLogger(__name__)

PROVIDER = "GitHub"
GITHUB_DOTCOM = "https://github.com"
DEFAULT_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 3
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 4.0
# Waiting longer than this inside a push would hold the person's request (or a worker) for too long.
RATE_LIMIT_MAX_WAIT_S = 20.0
MAX_RATE_LIMIT_WAITS = 2
FILE_MODE = "100644"
REPO_SCOPES = ("repo", "public_repo")

T = TypeVar("T")


# --- errors ------------------------------------------------------------------------------------------


class GithubMissingScope(GithubError):
    reason = "github_missing_scope"


class GithubNotFound(GithubError):
    reason = "github_not_found"


class GithubRateLimited(GithubError):
    reason = "github_rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, **extra: Any) -> None:
        retry_at = datetime.fromtimestamp(time.time() + retry_after_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        super().__init__(message, status=429, retryable=True, retry_after_s=retry_after_s, retry_at=retry_at,
                         **extra)
        self.retry_after_s = retry_after_s


class GithubRepoEmpty(GithubError):
    reason = "github_repo_empty"


class GithubRejected(GithubError):
    """GitHub understood the request and refused it (422), e.g. a name already taken."""

    reason = "github_rejected"

    def __init__(self, message: str, *, errors: list[Any] | None = None, **extra: Any) -> None:
        super().__init__(message, status=422, **extra)
        self.errors = errors or []


class NotFastForward(GithubRejected):
    reason = "github_not_fast_forward"


class RefExists(GithubRejected):
    reason = "github_ref_exists"


class GithubUnavailable(GithubError):
    """GitHub answered 5xx or did not answer in time, after the retries allowed for the step."""

    reason = "github_unavailable"


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoInfo:
    full_name: str
    html_url: str
    owner_login: str
    default_branch: str
    private: bool
    can_push: bool


@dataclass(frozen=True)
class RemoteTree:
    """A commit's tree flattened: `files` maps each blob's path to its git sha."""

    sha: str
    files: dict[str, str]


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree_sha: str
    html_url: str


@dataclass(frozen=True)
class Author:
    name: str
    email: str
    date: datetime

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email,
                "date": self.date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def api_url_for(github_url: str) -> str:
    base = github_url.rstrip("/")
    return "https://api.github.com" if base == GITHUB_DOTCOM else f"{base}/api/v3"


def web_url_for(github_url: str, full_name: str) -> str:
    return f"{github_url.rstrip('/')}/{full_name}"


def _message_of(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("message") or "") if isinstance(body, dict) else ""


def _errors_of(response: requests.Response) -> list[Any]:
    try:
        body = response.json()
    except ValueError:
        return []
    return list(body.get("errors") or []) if isinstance(body, dict) else []


def _rate_limit_wait_s(response: requests.Response) -> float | None:
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


def _has_repo_scope(response: requests.Response) -> bool | None:
    """Whether the token may touch repositories, from `X-OAuth-Scopes`; None when GitHub did not say."""
    header = response.headers.get("X-OAuth-Scopes")
    if header is None:
        return None
    scopes = {s.strip() for s in header.split(",") if s.strip()}
    return bool(scopes & set(REPO_SCOPES))


class GithubRepoClient:
    """One person's GitHub, reached with their OAuth token. Not thread-safe: one per push."""

    def __init__(
        self,
        *,
        github_url: str,
        token: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        rate_limit_max_wait_s: float = RATE_LIMIT_MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.github_url = github_url.rstrip("/")
        self.api_url = api_url_for(self.github_url)
        session = GitHubSession(default_connect_timeout=min(CONNECT_TIMEOUT_S, timeout_s),
                                default_read_timeout=timeout_s)
        if self.github_url == GITHUB_DOTCOM:
            self._gh = github3.GitHub(token=token, session=session)
        else:
            self._gh = github3.GitHubEnterprise(self.github_url, token=token, session=session)
        # Ask for the JSON GitHub documents today rather than github3's `full+json` media type.
        session.headers["Accept"] = "application/vnd.github+json"
        session.headers["X-GitHub-Api-Version"] = "2022-11-28"
        self._session = session
        self.max_attempts = max(1, max_attempts)
        self.rate_limit_max_wait_s = rate_limit_max_wait_s
        self._sleep = sleep
        self._requests_sent = 0

    @property
    def requests_made(self) -> int:
        """Requests sent, retries included (github3's own counter misses those that timed out)."""
        return self._requests_sent

    # --- the calls -----------------------------------------------------------------------------------

    def authenticated_login(self) -> str:
        data = self._call("read your GitHub account", lambda: self._get_json(self._url("user")))
        return str(data["login"])

    def create_repository(self, name: str, *, description: str, private: bool) -> RepoInfo:
        """Create `name` on the person's account. A name already taken raises `GithubRejected`."""
        body = {"name": name, "description": description, "private": private, "auto_init": False,
                "has_wiki": False}
        data = self._call("create the repository",
                          lambda: self._post_json(self._url("user", "repos"), body, 201), idempotent=False)
        return self._repo_info(data)

    def get_repository(self, full_name: str) -> RepoInfo:
        return self._repo_info(self._call("read the repository",
                                          lambda: self._get_json(self._repo_url(full_name))))

    def get_branch_head(self, full_name: str, branch: str) -> str | None:
        """The commit sha the branch points at; None when the repository has no commit at all."""
        try:
            data = self._call("read the branch",
                              lambda: self._get_json(self._repo_url(full_name, "git", "ref", "heads", branch)))
        except GithubRepoEmpty:
            return None
        return str(data["object"]["sha"])

    def get_tree(self, full_name: str, tree_ish: str) -> RemoteTree:
        """The whole tree of a commit (or tree) sha, recursively, as path -> blob sha."""
        data = self._call("read the files on GitHub", lambda: self._get_json(
            self._repo_url(full_name, "git", "trees", tree_ish), params={"recursive": "1"}))
        if data.get("truncated"):
            # GitHub caps recursive listings (100,000 entries); a snapshot is far smaller, but a linked
            # repository might not be, and a partial listing would make deletions silently wrong.
            raise GithubError("This repository is too large for GitHub to list in one answer; push to a "
                              "smaller repository.")
        files = {e["path"]: e["sha"] for e in data.get("tree", []) if e.get("type") == "blob"}
        return RemoteTree(sha=str(data["sha"]), files=files)

    def create_blob(self, full_name: str, content: bytes) -> str:
        body = {"content": base64.b64encode(content).decode(), "encoding": "base64"}
        data = self._call("upload a file", lambda: self._post_json(
            self._repo_url(full_name, "git", "blobs"), body, 201))
        return str(data["sha"])

    def create_tree(self, full_name: str, entries: dict[str, str | None], *, base_tree: str | None,
                    contents: dict[str, str] | None = None) -> str:
        """A tree: `base_tree` with each path of `entries` set to a blob sha (None removes the path) and
        each path of `contents` set to that text, which GitHub stores as a blob itself.

        Sending text inline saves one request per file, and GitHub counts blob creations against its
        secondary limit on content-creating requests (about 80 a minute), which a 300-file first push
        would exceed with one blob request per file.
        """
        items: list[dict[str, Any]] = [{"path": path, "mode": FILE_MODE, "type": "blob", "sha": sha}
                                       for path, sha in sorted(entries.items())]
        items += [{"path": path, "mode": FILE_MODE, "type": "blob", "content": text}
                  for path, text in sorted((contents or {}).items())]
        body: dict[str, Any] = {"tree": items}
        if base_tree:
            body["base_tree"] = base_tree
        data = self._call("build the file tree", lambda: self._post_json(
            self._repo_url(full_name, "git", "trees"), body, 201))
        return str(data["sha"])

    def create_commit(self, full_name: str, *, message: str, tree: str, parents: list[str],
                      author: Author | None) -> CommitInfo:
        body: dict[str, Any] = {"message": message, "tree": tree, "parents": parents}
        if author is not None:
            body["author"] = author.as_json()
        # With an explicit author date the commit's sha is fixed by its content, so a retry after a
        # lost answer creates the same object; without one, a retry may leave a dangling commit (harmless).
        data = self._call("create the commit", lambda: self._post_json(
            self._repo_url(full_name, "git", "commits"), body, 201))
        return CommitInfo(sha=str(data["sha"]), tree_sha=str(data["tree"]["sha"]),
                          html_url=self.commit_url(full_name, str(data["sha"])))

    def update_branch(self, full_name: str, branch: str, sha: str) -> None:
        """Move the branch to `sha`, never forcing: `NotFastForward` when it moved elsewhere meanwhile."""
        body = {"sha": sha, "force": False}
        try:
            self._call("move the branch", lambda: self._patch_json(
                self._repo_url(full_name, "git", "refs", "heads", branch), body))
        except GithubRejected as exc:
            raise NotFastForward(
                f"GitHub refused to move {branch} of {full_name}: it is not a fast forward (the branch "
                "changed on GitHub meanwhile).", errors=exc.errors) from exc

    def create_branch(self, full_name: str, branch: str, sha: str) -> None:
        body = {"ref": f"refs/heads/{branch}", "sha": sha}
        try:
            self._call("create the branch", lambda: self._post_json(
                self._repo_url(full_name, "git", "refs"), body, 201), idempotent=False)
        except GithubRejected as exc:
            if "already exists" in exc.message.lower():
                raise RefExists(f"A branch named {branch} already exists on {full_name}.") from exc
            raise

    def create_first_file(self, full_name: str, *, branch: str, path: str, content: bytes, message: str,
                          author: Author | None) -> CommitInfo:
        """The first commit of an empty repository, through the Contents API (one file).

        GitHub's Git Data API answers 409 "Git Repository is empty." until a commit exists; the Contents
        API is the documented way to make that first commit.
        """
        body: dict[str, Any] = {"message": message, "content": base64.b64encode(content).decode(),
                                "branch": branch}
        if author is not None:
            body["author"] = author.as_json()
            body["committer"] = author.as_json()
        url = self._repo_url(full_name, "contents", *path.split("/"))
        data = self._call("make the first commit", lambda: self._json(
            self._gh._put(url, json=body), 201), idempotent=False)
        commit = data["commit"]
        return CommitInfo(sha=str(commit["sha"]), tree_sha=str(commit["tree"]["sha"]),
                          html_url=self.commit_url(full_name, str(commit["sha"])))

    # --- links -----------------------------------------------------------------------------------------

    def commit_url(self, full_name: str, sha: str) -> str:
        return f"{web_url_for(self.github_url, full_name)}/commit/{sha}"

    def compare_url(self, full_name: str, base: str, head: str) -> str:
        return f"{web_url_for(self.github_url, full_name)}/compare/{base}...{head}?expand=1"

    # --- plumbing --------------------------------------------------------------------------------------

    def _url(self, *parts: str) -> str:
        return self._session.build_url(*parts, base_url=self.api_url)

    def _repo_url(self, full_name: str, *parts: str) -> str:
        owner, _, name = full_name.partition("/")
        return self._url("repos", owner, name, *parts)

    def _json(self, response: requests.Response | None, expected: int) -> Any:
        if response is None:
            raise GithubUnavailable("GitHub did not answer.")
        if response.status_code != expected:
            if response.status_code >= 400:
                raise gh_errors.error_for(response)
            raise GithubError(f"GitHub answered {response.status_code} where {expected} was expected.",
                              status=response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            raise GithubError("GitHub sent an answer that is not JSON.", status=response.status_code) from exc

    def _get_json(self, url: str, params: dict[str, str] | None = None) -> Any:
        return self._json(self._gh._get(url, params=params), 200)

    def _post_json(self, url: str, body: dict[str, Any], expected: int) -> Any:
        return self._json(self._gh._post(url, data=body), expected)

    def _patch_json(self, url: str, body: dict[str, Any]) -> Any:
        return self._json(self._gh._patch(url, json=body), 200)

    def _repo_info(self, data: dict[str, Any]) -> RepoInfo:
        permissions = data.get("permissions") or {}
        return RepoInfo(
            full_name=str(data["full_name"]),
            html_url=str(data.get("html_url") or web_url_for(self.github_url, data["full_name"])),
            owner_login=str((data.get("owner") or {}).get("login") or data["full_name"].split("/")[0]),
            default_branch=str(data.get("default_branch") or "main"),
            private=bool(data.get("private")),
            can_push=bool(permissions.get("push") or permissions.get("admin")),
        )

    def _call(self, step: str, do: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one GitHub request with the failure policy of the module docstring."""
        attempt = 0
        rate_waits = 0
        while True:
            attempt += 1
            self._requests_sent += 1
            try:
                return do()
            except gh_errors.ResponseError as exc:
                response = exc.response
                wait_s = _rate_limit_wait_s(response)
                if wait_s is not None:
                    if wait_s <= self.rate_limit_max_wait_s and rate_waits < MAX_RATE_LIMIT_WAITS:
                        rate_waits += 1
                        attempt -= 1  # a rate-limited request was not processed: it costs no attempt
                        log.info("github rate limited during %r; waiting %.1fs", step, wait_s)
                        self._sleep(wait_s + 0.5)
                        continue
                    raise self._rate_limited(step, wait_s) from exc
                if response.status_code >= 500 and idempotent and attempt < self.max_attempts:
                    log.info("github %s during %r; retry %d", response.status_code, step, attempt)
                    self._backoff(attempt)
                    continue
                raise self._translate(step, response) from exc
            except gh_errors.TransportError as exc:
                if idempotent and attempt < self.max_attempts:
                    log.info("github unreachable during %r; retry %d", step, attempt)
                    self._backoff(attempt)
                    continue
                raise GithubUnavailable(
                    f"GitHub did not answer in time while Sorya tried to {step}. Nothing was lost; try "
                    "again in a moment.", retryable=True) from exc

    def _backoff(self, attempt: int) -> None:
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
        self._sleep(delay * (0.5 + random.random() / 2))

    @staticmethod
    def _rate_limited(step: str, wait_s: float) -> GithubRateLimited:
        seconds = max(1, int(wait_s + 0.999))
        when = datetime.fromtimestamp(time.time() + seconds, UTC).strftime("%H:%M UTC")
        minutes = max(1, round(seconds / 60))
        span = f"{seconds} seconds" if seconds < 120 else f"{minutes} minutes"
        return GithubRateLimited(
            f"GitHub's rate limit for your account was reached while Sorya tried to {step}. Try again "
            f"after {when} (in about {span}).", retry_after_s=seconds)

    @staticmethod
    def _translate(step: str, response: requests.Response) -> GithubError:
        status = response.status_code
        message = _message_of(response)
        if status == 401:
            return GithubTokenRevoked(
                "GitHub no longer accepts Sorya's access to your account (the authorisation was revoked "
                "or expired). Reconnect GitHub, then try again.", status=status)
        if status in (403, 404) and _has_repo_scope(response) is False:
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
            return GithubRejected(f"GitHub refused to {step}: {detail}.", errors=_errors_of(response))
        if status >= 500:
            return GithubUnavailable(
                f"GitHub had a problem ({status}) while Sorya tried to {step}. Nothing was lost; try again "
                "in a moment.", status=status, retryable=True)
        return GithubError(f"GitHub answered {status} while Sorya tried to {step}"
                           f"{': ' + message if message else ''}.", status=status)
