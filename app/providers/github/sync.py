"""What a pull needs from GitHub: a conditional read of a branch head (an unchanged branch answers 304,
which costs no rate limit), the comparison of two commits, and file contents by blob sha."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from app.providers.github.errors import GithubRepoEmpty
from app.providers.github.repos import GithubRepoClient


@dataclass(frozen=True)
class HeadCheck:
    """A conditional read of a branch: `modified` False means GitHub answered 304 (head unchanged)."""

    modified: bool
    etag: str | None
    head: str | None


@dataclass(frozen=True)
class ChangedFile:
    path: str
    status: str  # added, modified, removed, renamed
    sha: str | None  # the blob at the head (None when removed)
    previous_path: str | None = None


@dataclass(frozen=True)
class Comparison:
    status: str  # identical, ahead, behind, diverged
    ahead_by: int
    behind_by: int
    files: list[ChangedFile]
    summaries: list[str]


def branch_head_if_changed(client: GithubRepoClient, full_name: str, branch: str, etag: str | None) -> HeadCheck:
    """The branch's head, asked with `If-None-Match: etag` (one request; a 304 is free)."""
    http = client._http  # noqa: SLF001 - same package
    url = client._repo_url(full_name, "git", "ref", "heads", branch)  # noqa: SLF001
    headers = {"If-None-Match": etag} if etag else {}
    try:
        response = http.call("check GitHub for new commits",
                             lambda: http.request("GET", url, expected=(200, 304), headers=headers))
    except GithubRepoEmpty:
        return HeadCheck(modified=True, etag=None, head=None)
    if response.status_code == 304:
        return HeadCheck(modified=False, etag=etag, head=None)
    return HeadCheck(modified=True, etag=response.headers.get("ETag"), head=str(response.json()["object"]["sha"]))


def compare(client: GithubRepoClient, full_name: str, base: str, head: str) -> Comparison:
    """How `head` relates to `base`: commits ahead/behind and the files changed since their merge base.
    An unknown `base` raises `GithubNotFound` (the commit is gone: history rewritten)."""
    data = client._http.call_json("compare the branch with Sorya's version", "GET",  # noqa: SLF001
                                  client._repo_url(full_name, "compare", f"{base}...{head}"))  # noqa: SLF001
    files = [ChangedFile(path=str(f["filename"]), status=str(f["status"]),
                         sha=None if f["status"] == "removed" else str(f.get("sha") or ""),
                         previous_path=f.get("previous_filename"))
             for f in data.get("files") or []]
    summaries = [str((c.get("commit") or {}).get("message") or "").split("\n")[0]
                 for c in data.get("commits") or []]
    return Comparison(status=str(data.get("status")), ahead_by=int(data.get("ahead_by") or 0),
                      behind_by=int(data.get("behind_by") or 0), files=files, summaries=summaries)


def read_blob(client: GithubRepoClient, full_name: str, sha: str) -> bytes:
    data = client._http.call_json("read a file on GitHub", "GET",  # noqa: SLF001
                                  client._repo_url(full_name, "git", "blobs", sha))  # noqa: SLF001
    return base64.b64decode(data.get("content") or "")
