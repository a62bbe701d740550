"""Reading a whole branch from GitHub for an import: the repositories a person may import, a commit's
tree with sizes (to refuse or trim before downloading), and the commit's files streamed from the archive
endpoint.

Why the archive: a 1,000-file repository is one `GET .../tarball/{sha}` (GitHub answers 302 to its
codeload host, which streams a gzip'd tar) instead of 1,000 blob reads; `bench/github_sync.py` measures
both. The tar is read as a stream (`tarball.read_tar_stream`: `tarfile` mode `r|gz` over the response's raw
socket), one member at a time: only the files asked for are kept, the archive is never whole in memory.
"""

from __future__ import annotations

import base64
import tarfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from github3 import exceptions as gh_errors

from app.providers.github.errors import GithubError
from app.providers.github.repos import GithubRepoClient
from app.providers.github.tarball import read_tar_stream

ARCHIVE_TIMEOUT_S = 120.0
REPOS_PER_PAGE = 30
SEARCH_PAGES = 3
BLOB_READ_WORKERS = 8


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a recursive tree listing: `kind` is `blob` or `commit` (a submodule)."""

    path: str
    mode: str
    kind: str
    sha: str
    size: int


@dataclass(frozen=True)
class RepoSummary:
    full_name: str
    description: str
    private: bool
    default_branch: str
    updated_at: str
    html_url: str


@dataclass(frozen=True)
class RepoPage:
    repos: list[RepoSummary]
    page: int
    has_next: bool


def repo_summary(item: dict) -> RepoSummary:
    """A listing's line from GitHub's repository object."""
    return RepoSummary(
        full_name=str(item["full_name"]), description=str(item.get("description") or ""),
        private=bool(item.get("private")), default_branch=str(item.get("default_branch") or "main"),
        updated_at=str(item.get("updated_at") or ""), html_url=str(item.get("html_url") or ""))


def list_repositories(client: GithubRepoClient, *, page: int = 1, query: str = "") -> RepoPage:
    """The person's repositories (their own, their organisations', the ones they collaborate on), most
    recently updated first. With `query`, the first few pages are read and filtered by name."""
    http = client._http  # noqa: SLF001 - same package
    url = http.url("user", "repos")
    pages = range(1, SEARCH_PAGES + 1) if query else range(page, page + 1)
    per_page = 100 if query else REPOS_PER_PAGE
    found: list[RepoSummary] = []
    has_next = False
    for number in pages:
        params = {"affiliation": "owner,collaborator,organization_member", "sort": "updated",
                  "per_page": str(per_page), "page": str(number)}
        response = http.call("list your repositories", lambda p=params: http.request("GET", url, params=p))
        found.extend(repo_summary(item) for item in response.json())
        has_next = 'rel="next"' in response.headers.get("Link", "")
        if not has_next:
            break
    if query:
        needle = query.strip().lower()
        return RepoPage([r for r in found if needle in r.full_name.lower()], page=1, has_next=False)
    return RepoPage(found, page=page, has_next=has_next)


def list_tree(client: GithubRepoClient, full_name: str, commit_sha: str) -> list[TreeEntry]:
    """Every blob and submodule of a commit's tree, with sizes, in one request."""
    data = client._http.call_json(  # noqa: SLF001
        "read the files on GitHub", "GET", client._repo_url(full_name, "git", "trees", commit_sha),  # noqa: SLF001
        params={"recursive": "1"})
    if data.get("truncated"):
        raise GithubError("This repository has more files than GitHub lists in one answer (100,000); Sorya "
                          "cannot import it.", status=413)
    return [TreeEntry(path=str(e["path"]), mode=str(e.get("mode") or ""), kind=str(e["type"]),
                      sha=str(e["sha"]), size=int(e.get("size") or 0))
            for e in data.get("tree", []) if e.get("type") in ("blob", "commit")]


def stream_archive(client: GithubRepoClient, full_name: str, commit_sha: str,
                   wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """(path, content) of each regular file of the commit whose path is in `wanted`, read from the
    tarball as it streams. Raises `GithubError` when the download fails half-way."""
    http = client._http  # noqa: SLF001
    url = client._repo_url(full_name, "tarball", commit_sha)  # noqa: SLF001
    response = http.call("download the repository", lambda: http.request(
        "GET", url, stream=True, allow_redirects=True, timeout=(5.0, ARCHIVE_TIMEOUT_S)))
    try:
        yield from read_tar_stream(response.raw, wanted)
    except (tarfile.TarError, OSError, EOFError, gh_errors.GitHubException) as exc:
        raise GithubError("The download of the repository from GitHub broke off; nothing was imported. "
                          "Try again.", retryable=True) from exc
    finally:
        response.close()


def read_blobs(make_client: Callable[[], GithubRepoClient], full_name: str, entries: list[TreeEntry],
               workers: int = BLOB_READ_WORKERS) -> Iterator[tuple[str, bytes]]:
    """The other way to fetch a tree: one `GET .../git/blobs/{sha}` per file, `workers` at a time, each
    thread on its own client (a github3 session is not thread-safe). Kept for the bench's comparison."""
    local = threading.local()

    def read(entry: TreeEntry) -> tuple[str, bytes]:
        reader = getattr(local, "client", None)
        if reader is None:
            reader = local.client = make_client()
        data = reader._http.call_json("read a file", "GET",  # noqa: SLF001
                                      reader._repo_url(full_name, "git", "blobs", entry.sha))  # noqa: SLF001
        return entry.path, base64.b64decode(data.get("content") or "")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(read, entries)
