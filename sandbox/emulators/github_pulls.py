"""The GitHub emulator's pull requests and branch protection (a mixin of `GitHubEmulator`).

- `POST /repos/{o}/{r}/pulls {title, head, base, body}` -> 201 the pull (422 "A pull request already
  exists for owner:head." for a second open one, 422 "No commits between base and head"), `GET
  .../pulls/{number}`, `GET .../pulls?state=&head=owner:branch`; answers carry ETags like every GET.
- Control: `POST /_emulator/repos/{o}/{r}/pulls/{number}/merge` (the base branch moves to a merge
  commit of the head's tree; the pull becomes closed + merged), `.../close`, and
  `POST /_emulator/repos/{o}/{r}/protect {"branch"}`: GitHub then refuses ref updates of that branch with
  422 "Protected branch update failed for refs/heads/{branch}.".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.emulators.base import json_response
from sandbox.emulators.git_objects import CommitObject, Signature


class PullRoutes:
    pulls: dict[str, list[dict[str, Any]]]
    protected: set[str]

    def pull_api_routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", "/repos/{owner}/{repo}/pulls", self.create_pull),
                ("GET", "/repos/{owner}/{repo}/pulls", self.list_pulls),
                ("GET", "/repos/{owner}/{repo}/pulls/{number:\\d+}", self.get_pull)]

    def add_pull_control_routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("POST", "/_emulator/repos/{owner}/{repo}/pulls/{number}/merge", self._control_merge_pull)
        add("POST", "/_emulator/repos/{owner}/{repo}/pulls/{number}/close", self._control_close_pull)
        add("POST", "/_emulator/repos/{owner}/{repo}/protect", self._control_protect)

    def reset_pulls(self) -> None:
        self.pulls = {}
        self.protected = set()

    def is_protected(self, repo: Any, ref: str) -> bool:
        return f"{repo.full_name.lower()}:{ref}" in self.protected

    def pull_json(self, repo: Any, pull: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"{self.api}/repos/{repo.full_name}/pulls/{pull['number']}",  # type: ignore[attr-defined]
            "html_url": f"{self.base_url}/{repo.full_name}/pull/{pull['number']}",  # type: ignore[attr-defined]
            "id": 1_000_000 + pull["number"], "number": pull["number"], "state": pull["state"],
            "title": pull["title"], "body": pull["body"], "merged": pull["merged"],
            "merged_at": pull["merged_at"], "created_at": pull["created_at"],
            "head": {"ref": pull["head"], "sha": repo.head(pull["head"]) or pull.get("head_sha"),
                     "label": f"{repo.owner}:{pull['head']}"},
            "base": {"ref": pull["base"], "sha": repo.head(pull["base"]), "label": f"{repo.owner}:{pull['base']}"},
            "user": {"login": pull["user"]},
        }

    async def create_pull(self, request: web.Request) -> web.Response:
        from sandbox.emulators.github_emulator import ApiError

        repo, user, _ = self._repo(request, write=True)  # type: ignore[attr-defined]
        body = await self._json_body(request)  # type: ignore[attr-defined]
        head = str(body.get("head") or "").split(":")[-1]
        base = str(body.get("base") or "")
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ApiError(422, "Validation Failed", errors=[{"resource": "PullRequest", "field": "title",
                                                              "code": "missing_field"}])
        if repo.head(head) is None or repo.head(base) is None:
            raise ApiError(422, "Validation Failed", errors=[{"resource": "PullRequest", "field": "head",
                                                              "code": "invalid"}])
        pulls = self.pulls.setdefault(repo.full_name.lower(), [])
        if any(p["head"] == head and p["base"] == base and p["state"] == "open" for p in pulls):
            raise ApiError(422, "Validation Failed", errors=[{
                "resource": "PullRequest", "code": "custom",
                "message": f"A pull request already exists for {repo.owner}:{head}."}])
        if repo.store.is_ancestor(repo.head(head), repo.head(base)):
            raise ApiError(422, "Validation Failed", errors=[{
                "resource": "PullRequest", "code": "custom", "message": f"No commits between {base} and {head}"}])
        pull = {"number": sum(len(v) for v in self.pulls.values()) + 1, "state": "open", "title": title,
                "body": body.get("body") or "", "merged": False, "merged_at": None, "head": head, "base": base,
                "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "user": user.login if user else "ghost"}
        pulls.append(pull)
        return json_response(self.pull_json(repo, pull), status=201)

    def _find(self, repo: Any, number: int) -> dict[str, Any] | None:
        return next((p for p in self.pulls.get(repo.full_name.lower(), []) if p["number"] == number), None)

    async def get_pull(self, request: web.Request) -> web.Response:
        from sandbox.emulators.github_emulator import ApiError

        repo, _, _ = self._repo(request)  # type: ignore[attr-defined]
        pull = self._find(repo, int(request.match_info["number"]))
        if pull is None:
            raise ApiError(404, "Not Found")
        return json_response(self.pull_json(repo, pull))

    async def list_pulls(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)  # type: ignore[attr-defined]
        state = request.query.get("state", "open")
        head = request.query.get("head", "").split(":")[-1]
        found = [p for p in self.pulls.get(repo.full_name.lower(), [])
                 if (state == "all" or p["state"] == state) and (not head or p["head"] == head)]
        return json_response([self.pull_json(repo, p) for p in reversed(found)])

    async def _control_merge_pull(self, request: web.Request) -> web.Response:
        repo = self.repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}".lower())  # type: ignore[attr-defined]
        pull = self._find(repo, int(request.match_info["number"])) if repo else None
        if repo is None or pull is None or pull["state"] != "open":
            return json_response({"error": "no such open pull request"}, status=404)
        base_head, head_sha = repo.head(pull["base"]), repo.head(pull["head"])
        who = Signature("Someone Else", "someone@example.com", datetime.now(UTC).replace(microsecond=0))
        merge = CommitObject(repo.store.commit(head_sha).tree, (base_head, head_sha), who, who,
                             f"Merge pull request #{pull['number']} from {repo.owner}/{pull['head']}")
        sha = repo.store.put_commit(merge)
        repo.refs[f"refs/heads/{pull['base']}"] = sha
        repo.pushed_at = repo.updated_at = time.time()
        pull.update(state="closed", merged=True, merged_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    head_sha=head_sha)
        return json_response({"sha": sha, "merged": True})

    async def _control_close_pull(self, request: web.Request) -> web.Response:
        repo = self.repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}".lower())  # type: ignore[attr-defined]
        pull = self._find(repo, int(request.match_info["number"])) if repo else None
        if pull is None:
            return json_response({"error": "no such pull request"}, status=404)
        pull["state"] = "closed"
        return json_response({"state": "closed"})

    async def _control_protect(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = f"{request.match_info['owner']}/{request.match_info['repo']}".lower()
        self.protected.add(f"{key}:refs/heads/{body.get('branch') or 'main'}")
        return json_response({"protected": body.get("branch") or "main"})
