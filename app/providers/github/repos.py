"""The git data operations of a push, over `http.GithubHttp` (github3.py): repositories, refs, trees,
blobs, commits.

Services see small typed results (`RepoInfo`, `RemoteTree`, `CommitInfo`) and the errors of `errors.py`.
Repositories are created and read with github3's own methods (`gh.create_repository`, `gh.repository`).

Request economy: github3's Git Data methods (`create_blob`, `create_tree`, `create_commit`, `ref`,
`Reference.update`, `create_ref`, `tree`, `create_file`) live on its `Repository` object, and github3
builds that object only from a `GET /repos/{owner}/{name}` answer (its attributes are read from ~45 keys of
it); a `Reference` likewise costs a `GET .../git/ref/...` before `update`. A push would pay one or two more
requests for objects it never reads, so its Git Data calls go through the same github3 session
(`GithubHttp.request`) straight to their URLs, built from the repository's full name: one request per
step and nothing else; `requests_made` counts every request, retries included. The retry policy and
error translation are `http.py`'s, the same for every call.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from github3.repos.repo import Repository

from app.providers.github.errors import (
    BranchProtected,
    GithubError,
    GithubRejected,
    GithubRepoEmpty,
    NotFastForward,
    RefExists,
)
from app.providers.github.http import (
    DEFAULT_TIMEOUT_S,
    MAX_ATTEMPTS,
    RATE_LIMIT_MAX_WAIT_S,
    GithubHttp,
    api_url_for,
    web_url_for,
)

FILE_MODE = "100644"


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


class GithubRepoClient:
    """One person's GitHub repositories, reached with their OAuth token (or a GitHub App installation
    token, `installation_id` set). Not thread-safe: one per push."""

    def __init__(
        self,
        *,
        github_url: str,
        token: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        rate_limit_max_wait_s: float = RATE_LIMIT_MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
        installation_id: int | None = None,
    ) -> None:
        self.github_url = github_url.rstrip("/")
        self._http = GithubHttp(api_url=api_url_for(self.github_url), token=token, timeout_s=timeout_s,
                                max_attempts=max_attempts, rate_limit_max_wait_s=rate_limit_max_wait_s,
                                sleep=sleep, installation_id=installation_id)

    @property
    def requests_made(self) -> int:
        """Requests sent, retries included."""
        return self._http.requests_made

    # --- the calls -----------------------------------------------------------------------------------

    def create_repository(self, name: str, *, description: str, private: bool) -> RepoInfo:
        """Create `name` on the person's account. A name already taken raises `GithubRejected`."""
        gh = self._http.gh
        repo = self._http.call("create the repository", lambda: gh.create_repository(
            name, description=description, private=private, has_wiki=False, auto_init=False), idempotent=False)
        return self._repo_info(repo)

    def get_repository(self, full_name: str) -> RepoInfo:
        owner, _, name = full_name.partition("/")
        return self._repo_info(self._http.call("read the repository", lambda: self._http.gh.repository(owner, name)))

    def get_branch_head(self, full_name: str, branch: str) -> str | None:
        """The commit sha the branch points at; None when the repository has no commit at all."""
        try:
            data = self._http.call_json("read the branch", "GET",
                                        self._repo_url(full_name, "git", "ref", "heads", branch))
        except GithubRepoEmpty:
            return None
        return str(data["object"]["sha"])

    def get_tree(self, full_name: str, tree_ish: str) -> RemoteTree:
        """The whole tree of a commit (or tree) sha, recursively, as path -> blob sha."""
        data = self._http.call_json("read the files on GitHub", "GET",
                                    self._repo_url(full_name, "git", "trees", tree_ish), params={"recursive": "1"})
        if data.get("truncated"):
            # GitHub caps recursive listings (100,000 entries); a snapshot is far smaller, but a linked
            # repository might not be, and a partial listing would make deletions silently wrong.
            raise GithubError("This repository is too large for GitHub to list in one answer; push to a "
                              "smaller repository.")
        files = {e["path"]: e["sha"] for e in data.get("tree", []) if e.get("type") == "blob"}
        return RemoteTree(sha=str(data["sha"]), files=files)

    def create_blob(self, full_name: str, content: bytes) -> str:
        body = {"content": base64.b64encode(content).decode(), "encoding": "base64"}
        data = self._http.call_json("upload a file", "POST", self._repo_url(full_name, "git", "blobs"), json=body,
                                    expected=201)
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
        data = self._http.call_json("build the file tree", "POST", self._repo_url(full_name, "git", "trees"),
                                    json=body, expected=201)
        return str(data["sha"])

    def create_commit(self, full_name: str, *, message: str, tree: str, parents: list[str],
                      author: Author | None) -> CommitInfo:
        body: dict[str, Any] = {"message": message, "tree": tree, "parents": parents}
        if author is not None:
            body["author"] = author.as_json()
        # With an explicit author date the commit's sha is fixed by its content, so a retry after a
        # lost answer creates the same object; without one, a retry may leave a dangling commit (harmless).
        data = self._http.call_json("create the commit", "POST", self._repo_url(full_name, "git", "commits"),
                                    json=body, expected=201)
        return CommitInfo(sha=str(data["sha"]), tree_sha=str(data["tree"]["sha"]),
                          html_url=self.commit_url(full_name, str(data["sha"])))

    def update_branch(self, full_name: str, branch: str, sha: str) -> None:
        """Move the branch to `sha`, never forcing: `NotFastForward` when it moved elsewhere meanwhile."""
        body = {"sha": sha, "force": False}
        try:
            self._http.call_json("move the branch", "PATCH",
                                 self._repo_url(full_name, "git", "refs", "heads", branch), json=body)
        except GithubRejected as exc:
            if "protected branch" in exc.message.lower():
                raise BranchProtected(
                    f"{branch} of {full_name} is a protected branch: GitHub accepts changes to it only "
                    "through a pull request.", errors=exc.errors) from exc
            raise NotFastForward(
                f"GitHub refused to move {branch} of {full_name}: it is not a fast forward (the branch "
                "changed on GitHub meanwhile).", errors=exc.errors) from exc

    def create_branch(self, full_name: str, branch: str, sha: str) -> None:
        body = {"ref": f"refs/heads/{branch}", "sha": sha}
        try:
            self._http.call_json("create the branch", "POST", self._repo_url(full_name, "git", "refs"), json=body,
                                 expected=201, idempotent=False)
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
        data = self._http.call_json("make the first commit", "PUT", url, json=body, expected=201,
                                    idempotent=False)
        commit = data["commit"]
        return CommitInfo(sha=str(commit["sha"]), tree_sha=str(commit["tree"]["sha"]),
                          html_url=self.commit_url(full_name, str(commit["sha"])))

    # --- links -----------------------------------------------------------------------------------------

    def commit_url(self, full_name: str, sha: str) -> str:
        return f"{web_url_for(self.github_url, full_name)}/commit/{sha}"

    def compare_url(self, full_name: str, base: str, head: str) -> str:
        return f"{web_url_for(self.github_url, full_name)}/compare/{base}...{head}?expand=1"

    # --- plumbing --------------------------------------------------------------------------------------

    def _repo_url(self, full_name: str, *parts: str) -> str:
        owner, _, name = full_name.partition("/")
        return self._http.url("repos", owner, name, *parts)

    def _repo_info(self, repo: Repository | None) -> RepoInfo:
        if repo is None:  # github3 makes no object of an empty answer
            raise GithubError("GitHub answered without the repository.")
        data = repo.as_dict()
        permissions = data.get("permissions") or {}
        return RepoInfo(
            full_name=str(data["full_name"]),
            html_url=str(data.get("html_url") or web_url_for(self.github_url, data["full_name"])),
            owner_login=str((data.get("owner") or {}).get("login") or data["full_name"].split("/")[0]),
            default_branch=str(data.get("default_branch") or "main"),
            private=bool(data.get("private")),
            can_push=bool(permissions.get("push") or permissions.get("admin")),
        )
