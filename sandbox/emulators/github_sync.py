"""The GitHub emulator's two-way sync surface (a mixin of `GitHubEmulator`): conditional requests,
the compare API and a force-push control command.

- **ETags**: every `200` answer to an API `GET` carries `ETag: "<sha1 of the body>"`; a request whose
  `If-None-Match` names it is answered `304 Not Modified` with no body, and (as on GitHub) a 304 does not
  count against the rate limit.
- **Compare**: `GET /repos/{owner}/{repo}/compare/{base}...{head}` with GitHub's fields (`status`:
  `identical` / `ahead` / `behind` / `diverged`, `ahead_by`, `behind_by`, `total_commits`, `commits`
  oldest first, `merge_base_commit`, `files` with each file's blob `sha`). An unknown base is 404.
- **Force push** (`POST /_emulator/repos/{owner}/{repo}/force_push {"files", "branch"?, "message"?}`): the
  branch is moved to a new root commit holding exactly `files`, so the old head is no longer an
  ancestor: history rewritten.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.emulators.base import json_response
from sandbox.emulators.git_objects import FILE_MODE, CommitObject, Signature


def etag_for(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest() + '"'


def not_modified(request: web.Request, response: web.StreamResponse) -> web.StreamResponse | None:
    """The 304 to send instead of `response` when the client already holds it, else None (and the ETag
    is set on `response`)."""
    if request.method != "GET" or response.status != 200 or not isinstance(response, web.Response):
        return None
    body = response.body if isinstance(response.body, bytes) else None
    if body is None:
        return None
    tag = etag_for(body)
    response.headers["ETag"] = tag
    wanted = [t.strip() for t in request.headers.get("If-None-Match", "").split(",") if t.strip()]
    if tag in wanted or f"W/{tag}" in wanted:
        return web.Response(status=304, headers={"ETag": tag})
    return None


class SyncRoutes:
    """Mixed into `GitHubEmulator`: needs `repos`, `_repo`, `_resolve`, `repo_commit_json`, `_diff_files`."""

    def sync_api_routes(self) -> list[tuple[str, str, Any]]:
        return [("GET", "/repos/{owner}/{repo}/compare/{basehead:.+}", self.compare)]

    def add_sync_control_routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/_emulator/repos/{owner}/{repo}/force_push", self._control_force_push)

    def _history(self, repo: Any, head: str, stop: set[str]) -> list[str]:
        """Commits reachable from `head` and not from `stop`, oldest first (first-parent order is enough
        for the emulator's linear histories)."""
        seen, order, pending = set(), [], [head]
        while pending:
            sha = pending.pop()
            if sha in seen or sha in stop:
                continue
            seen.add(sha)
            order.append(sha)
            commit = repo.store.commit(sha)
            if commit is not None:
                pending.extend(commit.parents)
        return list(reversed(order))

    def _ancestors(self, repo: Any, sha: str) -> set[str]:
        return set(self._history(repo, sha, set()))

    async def compare(self, request: web.Request) -> web.Response:
        from sandbox.emulators.github_emulator import ApiError

        repo, _, _ = self._repo(request)  # type: ignore[attr-defined]
        base_ref, sep, head_ref = request.match_info["basehead"].partition("...")
        if not sep:
            raise ApiError(404, "Not Found")
        base = self._resolve(repo, base_ref)  # type: ignore[attr-defined]
        head = self._resolve(repo, head_ref)  # type: ignore[attr-defined]
        if base is None or head is None:
            raise ApiError(404, "Not Found")
        base_side, head_side = self._ancestors(repo, base), self._ancestors(repo, head)
        common = base_side & head_side
        merge_base = next((sha for sha in reversed(self._history(repo, base, set())) if sha in common), None)
        ahead = self._history(repo, head, base_side)
        behind = self._history(repo, base, head_side)
        status = ("identical" if base == head else "ahead" if not behind else "behind" if not ahead
                  else "diverged")
        files = self._diff_files(repo, merge_base, head) if merge_base else []  # type: ignore[attr-defined]
        return json_response({
            "url": f"{self.api}/repos/{repo.full_name}/compare/{base_ref}...{head_ref}",  # type: ignore[attr-defined]
            "html_url": f"{self.base_url}/{repo.full_name}/compare/{base_ref}...{head_ref}",  # type: ignore[attr-defined]
            "status": status, "ahead_by": len(ahead), "behind_by": len(behind), "total_commits": len(ahead),
            "base_commit": self.repo_commit_json(repo, base, with_files=False),  # type: ignore[attr-defined]
            "merge_base_commit": (self.repo_commit_json(repo, merge_base, with_files=False)  # type: ignore[attr-defined]
                                  if merge_base else None),
            "commits": [self.repo_commit_json(repo, sha, with_files=False) for sha in ahead[-250:]],  # type: ignore[attr-defined]
            "files": files[:300],
        })

    async def _control_force_push(self, request: web.Request) -> web.Response:
        repo = self.repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}".lower())  # type: ignore[attr-defined]
        if repo is None:
            return json_response({"error": "unknown repository"}, status=404)
        body = await request.json()
        flat = {path: (FILE_MODE, "blob", repo.store.put_blob(text.encode()))
                for path, text in (body.get("files") or {}).items()}
        author = Signature("Someone Else", "someone@example.com", datetime.now(UTC).replace(microsecond=0))
        commit = CommitObject(repo.store.build_tree(flat), (), author, author,
                              body.get("message") or "Rewritten history")
        sha = repo.store.put_commit(commit)
        repo.refs[f"refs/heads/{body.get('branch') or repo.default_branch}"] = sha
        repo.pushed_at = repo.updated_at = time.time()
        return json_response({"commit_sha": sha})
