"""The GitHub emulator's repository archives and paginated repository listing (a mixin of
`GitHubEmulator`, kept apart so the emulator stays readable).

Archive semantics follow GitHub Enterprise Server: `GET /api/v3/repos/{owner}/{repo}/tarball/{ref}`
answers `302 Found` with a `Location` on the codeload host (here `/_codeload/...` on the same server,
carrying a short-lived `token` query parameter), and the codeload URL streams a gzip'd tar whose members
sit under one top folder `{owner}-{repo}-{short sha}/`, preceded by a pax global header whose `comment`
is the commit sha (what `git archive` writes). Symlinks are tar symlinks; submodules are left out (GitHub
leaves an empty folder); the codeload request is not an API request and costs no rate limit.
"""

from __future__ import annotations

import gzip
import io
import secrets
import tarfile
import time
import urllib.parse
from typing import Any

from aiohttp import web

from sandbox.emulators.base import json_response

ARCHIVE_TOKEN_TTL_S = 300
STREAM_CHUNK_BYTES = 64 * 1024
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 30


def build_tarball(prefix: str, commit_sha: str, entries: dict[str, tuple[str, str, bytes]]) -> bytes:
    """A gzip'd tar of `entries` (path -> (mode, kind, data)) under `prefix/`, as git archive writes it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": commit_sha}) as tar:
        folder = tarfile.TarInfo(prefix + "/")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o775
        tar.addfile(folder)
        for path, (mode, kind, data) in sorted(entries.items()):
            info = tarfile.TarInfo(f"{prefix}/{path}")
            if kind == "commit":  # a submodule: an empty folder, as GitHub's archives hold
                info.type = tarfile.DIRTYPE
                info.mode = 0o775
                tar.addfile(info)
            elif mode == "120000":
                info.type = tarfile.SYMTYPE
                info.linkname = data.decode(errors="replace")
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o775 if mode == "100755" else 0o664
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


class ArchiveRoutes:
    """Mixed into `GitHubEmulator`: needs `repos`, `_repo`, `_resolve`, `repo_json`, `_auth`, `api`,
    `base_url`."""

    archive_tokens: dict[str, tuple[str, str, float]]

    def archive_api_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/repos/{owner}/{repo}/tarball", self.get_tarball),
            ("GET", "/repos/{owner}/{repo}/tarball/{ref:.+}", self.get_tarball),
        ]

    def add_codeload_routes(self, app: web.Application) -> None:
        app.router.add_route("GET", "/_codeload/{owner}/{repo}/legacy.tar.gz/{sha}", self.codeload_tarball)

    async def get_tarball(self, request: web.Request) -> web.Response:
        from sandbox.emulators.github_emulator import ApiError

        repo, _, _ = self._repo(request)  # type: ignore[attr-defined]
        sha = self._resolve(repo, request.match_info.get("ref"))  # type: ignore[attr-defined]
        if sha is None:
            raise ApiError(404, "Not Found")
        if not hasattr(self, "archive_tokens"):
            self.archive_tokens = {}
        token = secrets.token_urlsafe(18)
        self.archive_tokens[token] = (repo.full_name.lower(), sha, time.time() + ARCHIVE_TOKEN_TTL_S)
        location = f"{self.base_url}/_codeload/{repo.full_name}/legacy.tar.gz/{sha}?token={token}"  # type: ignore[attr-defined]
        return web.Response(status=302, headers={"Location": location})

    async def codeload_tarball(self, request: web.Request) -> web.StreamResponse:
        owner, name, sha = request.match_info["owner"], request.match_info["repo"], request.match_info["sha"]
        grant = getattr(self, "archive_tokens", {}).get(request.query.get("token", ""))
        if grant is None or grant[0] != f"{owner}/{name}".lower() or grant[1] != sha or grant[2] < time.time():
            return web.Response(status=404, text="Not Found")
        repo = self.repos[grant[0]]  # type: ignore[attr-defined]
        commit = repo.store.commit(sha)
        flat = repo.store.flatten(commit.tree)
        entries = {path: (mode, kind, repo.store.get(obj) or b"" if kind == "blob" else b"")
                   for path, (mode, kind, obj) in flat.items()}
        body = build_tarball(f"{repo.owner}-{repo.name}-{sha[:7]}", sha, entries)
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "application/x-gzip",
            "Content-Disposition": f"attachment; filename={repo.owner}-{repo.name}-{sha[:7]}.tar.gz"})
        await response.prepare(request)
        for start in range(0, len(body), STREAM_CHUNK_BYTES):
            await response.write(body[start:start + STREAM_CHUNK_BYTES])
        await response.write_eof()
        return response

    # --- GET /user/repos, paginated with a Link header -------------------------------------------------
    def paginated(self, request: web.Request, items: list[Any]) -> web.Response:
        try:
            per_page = max(1, min(MAX_PER_PAGE, int(request.query.get("per_page", DEFAULT_PER_PAGE))))
            page = max(1, int(request.query.get("page", 1)))
        except ValueError:
            per_page, page = DEFAULT_PER_PAGE, 1
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []
        base = f"{self.api}{request.path.removeprefix('/api/v3')}"  # type: ignore[attr-defined]

        def link(number: int, rel: str) -> str:
            query = dict(request.query)
            query.update({"page": str(number), "per_page": str(per_page)})
            return f'<{base}?{urllib.parse.urlencode(query)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"Link": ", ".join(links)} if links else {}
        return json_response(chunk, headers=headers)
