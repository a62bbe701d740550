"""GitHub Enterprise emulator: OAuth web flow, REST API v3 under ``/api/v3``, and plain HTML pages.

Layout (GitHub Enterprise Server, and the value of GITHUB_URL is the server root)::

    {GITHUB_URL}/login/oauth/authorize       consent page (plain HTML form, no JavaScript)
    {GITHUB_URL}/login/oauth/access_token    code -> token exchange
    {GITHUB_URL}/api/v3/...                  the REST API
    {GITHUB_URL}/{owner}/{repo}[/tree/{branch}|/commit/{sha}|/compare/{a}...{b}|/blob/{ref}/{path}]

SDK configuration::

    gh = github3.GitHubEnterprise(GITHUB_URL, token=access_token)     # github3 appends /api/v3
    oauth = OAuth2Session(client_id, client_secret, scope="read:user user:email repo",
                          redirect_uri=callback)   # authlib.integrations.requests_client
    url, state = oauth.create_authorization_url(f"{GITHUB_URL}/login/oauth/authorize")
    token = oauth.fetch_token(f"{GITHUB_URL}/login/oauth/access_token", authorization_response=...)

The seeded OAuth app is ``client_id="sorya-sandbox"``, ``client_secret="sorya-sandbox-secret"`` (change
them with the constructor or ``POST /_emulator/oauth_apps``); with no registered callback URL any
``redirect_uri`` is accepted, otherwise it must start with the callback URL. Seeded users:
``octocat`` (verified primary email), ``mona`` (two verified emails) and ``newbie`` (no verified email).

Git objects are real (see ``git_objects.py``): blob, tree and commit shas are those git computes. As on
GitHub, the Git Data API answers 409 "Git Repository is empty." until a first commit exists (made by
``auto_init`` or a Contents API PUT). ``github3``'s ``repository.ref("heads/main")`` calls
``GET /repos/{o}/{r}/git/ref/heads/main`` and ``Reference.update`` PATCHes the ref's ``url``
(``.../git/refs/heads/main``); both spellings are served.

Scopes: ``repo`` gives everything on the user's repositories; ``public_repo`` allows writes to public
ones; reading a private repository or writing without the scope answers 404 (GitHub hides what a
token may not see); ``DELETE /repos/...`` needs ``delete_repo`` (403); ``/user/emails`` needs
``user:email`` or ``user`` (404). Every API answer has the X-RateLimit-* headers (5,000 per hour per
token), X-OAuth-Scopes and X-Accepted-OAuth-Scopes.

Control endpoints (besides those in ``base.py``):

| method and path | body | answer |
| --- | --- | --- |
| ``POST /_emulator/users`` | ``{"login", "name"?, "id"?, "emails"?: [{"email", "primary", "verified"}]}`` | the user |
| ``GET /_emulator/users`` | | ``{"users": [...]}`` |
| ``POST /_emulator/tokens`` | ``{"login", "scopes": ["repo", ...]}`` | ``{"token"}`` (skips the OAuth dance) |
| ``POST /_emulator/tokens/revoke`` | ``{"token"}`` | ``{"ok": true}``; the token then gets 401 Bad credentials |
| ``POST /_emulator/oauth_apps`` | ``{"client_id", "client_secret", "name", "callback_url"?}`` | the app |
| ``GET /_emulator/repos`` | | ``{"repos": ["owner/name", ...]}`` |
| ``GET /_emulator/repos/{o}/{r}/files?ref=`` | | ``{path: content}`` at the branch (default branch) |
| ``POST /_emulator/repos/{o}/{r}/push`` | ``{"files": {path: text or null}, "branch"?, "message"?, "author"?}`` | ``{"commit_sha"}`` |

GitHub Apps (JWT-checked app endpoints, installations, installation tokens with their expiry) are in
``github_app.py``; archives in ``github_archive.py``; ETags and compare in ``github_sync.py``; pull requests
and branch protection in ``github_pulls.py``.

Fault kinds: ``unauthorized`` (401 Bad credentials), ``forbidden`` (403), ``rate_limit`` (403 by default,
``status=429`` for the other flavour; X-RateLimit-Remaining 0, X-RateLimit-Reset, Retry-After; option
``retry_after`` seconds, default 60), ``secondary_rate_limit`` (403 + Retry-After), ``not_found`` (404),
``unprocessable`` (422), ``server_error`` (500; give ``status`` for 502/503).
"""

from __future__ import annotations

import base64
import difflib
import html
import itertools
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.emulators.base import Emulator, FaultRule, bearer_token, html_page, json_response
from sandbox.emulators.git_objects import (
    FILE_MODE,
    TREE_MODE,
    VALID_BLOB_MODES,
    CommitObject,
    ObjectStore,
    Signature,
)
from sandbox.emulators.github_app import AppRoutes, installation_allows, token_usable
from sandbox.emulators.github_archive import ArchiveRoutes
from sandbox.emulators.github_pulls import PullRoutes
from sandbox.emulators.github_sync import SyncRoutes, not_modified

DOCS = "https://docs.github.com/rest"
RATE_LIMIT_PER_HOUR = 5000
RATE_LIMIT_ANONYMOUS = 60
RATE_WINDOW_S = 3600
OAUTH_CODE_TTL_S = 600
API_VERSION = "2022-11-28"
# The scopes an API call says it accepted (X-Accepted-OAuth-Scopes); aiohttp 3.14 wants typed request keys.
ACCEPTED_SCOPES: web.RequestKey[str] = web.RequestKey("accepted_scopes")
LOGIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
REPO_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
SCOPE_DESCRIPTIONS = {
    "repo": "Full control of private repositories",
    "public_repo": "Access public repositories",
    "read:user": "Read all user profile data",
    "user:email": "Access user email addresses (read-only)",
    "user": "Update ALL user data",
    "delete_repo": "Delete repositories",
    "workflow": "Update GitHub Action workflows",
}
DEFAULT_CLIENT_ID = "sorya-sandbox"
DEFAULT_CLIENT_SECRET = "sorya-sandbox-secret"


def iso(moment: float) -> str:
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int | str) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode().rstrip("=")


def b64_lines(data: bytes) -> str:
    """Base64 in 60-character lines, each ending in a newline, as GitHub returns file contents."""
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i:i + 60] + "\n" for i in range(0, len(encoded), 60))


class ApiError(Exception):
    """An answer in GitHub's error shape: ``{"message", "documentation_url", "status", ...}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra, "documentation_url": DOCS, "status": str(self.status)}


@dataclass
class User:
    login: str
    id: int
    name: str | None
    emails: list[dict[str, Any]]
    created_at: float = field(default_factory=time.time)

    def primary_email(self) -> str | None:
        for email in self.emails:
            if email.get("primary"):
                return email["email"]
        return None


@dataclass
class Token:
    value: str
    login: str
    scopes: list[str]
    revoked: bool = False
    # A GitHub App installation token (github_app.py): the installation it belongs to, and when it expires.
    installation_id: int | None = None
    expires_at: float | None = None


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str
    name: str
    callback_url: str | None = None


@dataclass
class Grant:
    code: str
    client_id: str
    login: str
    scopes: list[str]
    redirect_uri: str
    issued: float
    used: bool = False


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    private: bool
    description: str | None
    homepage: str | None = None
    default_branch: str = "main"
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    pushed_at: float | None = None
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/main" -> commit sha
    store: ObjectStore = field(default_factory=ObjectStore)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def empty(self) -> bool:
        return not self.refs

    def head(self, branch: str | None = None) -> str | None:
        return self.refs.get(f"refs/heads/{branch or self.default_branch}")


def _seed_users() -> list[User]:
    return [
        User("octocat", 583231, "The Octocat",
             [{"email": "octocat@example.com", "primary": True, "verified": True, "visibility": "public"}]),
        User("mona", 1001, "Mona Lisa",
             [{"email": "mona@example.com", "primary": True, "verified": True, "visibility": "public"},
              {"email": "mona@work.example.com", "primary": False, "verified": True, "visibility": None}]),
        User("newbie", 1002, "New Bie",
             [{"email": "newbie@example.com", "primary": True, "verified": False, "visibility": "private"}]),
    ]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GitHubEmulator(AppRoutes, ArchiveRoutes, SyncRoutes, PullRoutes, Emulator):
    name = "github"
    sdk_path = ""

    def __init__(self, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET,
                 app_name: str = "Sorya (sandbox)", callback_url: str | None = None):
        super().__init__()
        self.seed_apps = [OAuthApp(client_id, client_secret, app_name, callback_url)]
        self.reset_state()

    # --- state -----------------------------------------------------------------------------------------
    def reset_state(self) -> None:
        self.users: dict[str, User] = {u.login.lower(): u for u in _seed_users()}
        self.apps: dict[str, OAuthApp] = {a.client_id: a for a in self.seed_apps}
        self.tokens: dict[str, Token] = {}
        self.grants: dict[str, Grant] = {}
        self.repos: dict[str, Repo] = {}  # "owner/name" lowercased -> repo
        self.rate_used: dict[str, tuple[float, int]] = {}  # token or ip -> (window start, used)
        self._ids = itertools.count(700_000_000)
        self._user_ids = itertools.count(2000)
        self.archive_tokens = {}
        self.reset_pulls()
        self.reset_apps()

    @property
    def api(self) -> str:
        return self.base_url + "/api/v3"

    def create_user(self, login: str, name: str | None = None, emails: list[dict] | None = None,
                    user_id: int | None = None) -> User:
        if emails is None:
            emails = [{"email": f"{login.lower()}@example.com", "primary": True, "verified": True,
                       "visibility": "public"}]
        for email in emails:
            email.setdefault("primary", False)
            email.setdefault("verified", False)
            email.setdefault("visibility", None)
        user = User(login, user_id or next(self._user_ids), name if name is not None else login, emails)
        self.users[login.lower()] = user
        return user

    def issue_token(self, login: str, scopes: list[str]) -> Token:
        token = Token("gho_" + secrets.token_urlsafe(27).replace("-", "A").replace("_", "b")[:36], login, scopes)
        self.tokens[token.value] = token
        return token

    # --- routes ----------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("POST", "/_emulator/users", self._control_create_user)
        add("GET", "/_emulator/users", self._control_users)
        add("POST", "/_emulator/tokens", self._control_issue_token)
        add("POST", "/_emulator/tokens/revoke", self._control_revoke_token)
        add("POST", "/_emulator/oauth_apps", self._control_oauth_app)
        add("GET", "/_emulator/repos", self._control_repos)
        add("GET", "/_emulator/repos/{owner}/{repo}/files", self._control_files)
        add("POST", "/_emulator/repos/{owner}/{repo}/push", self._control_push)
        self.add_codeload_routes(app)
        self.add_sync_control_routes(app)
        self.add_pull_control_routes(app)
        self.add_app_control_routes(app)

        add("GET", "/login/oauth/authorize", self.authorize_page)
        add("POST", "/login/oauth/authorize", self.authorize_submit)
        add("POST", "/login/oauth/access_token", self.access_token)

        api: list[tuple[str, str, Handler]] = [
            ("GET", "/user", self.get_me),
            ("GET", "/user/emails", self.get_emails),
            ("GET", "/user/repos", self.list_my_repos),
            ("POST", "/user/repos", self.create_repo),
            ("GET", "/users/{login}", self.get_user),
            ("GET", "/rate_limit", self.rate_limit),
            ("GET", "/repos/{owner}/{repo}", self.get_repo),
            ("PATCH", "/repos/{owner}/{repo}", self.edit_repo),
            ("DELETE", "/repos/{owner}/{repo}", self.delete_repo),
            ("POST", "/repos/{owner}/{repo}/git/blobs", self.create_blob),
            ("GET", "/repos/{owner}/{repo}/git/blobs/{sha}", self.get_blob),
            ("POST", "/repos/{owner}/{repo}/git/trees", self.create_tree),
            ("GET", "/repos/{owner}/{repo}/git/trees/{sha}", self.get_tree),
            ("POST", "/repos/{owner}/{repo}/git/commits", self.create_commit),
            ("GET", "/repos/{owner}/{repo}/git/commits/{sha}", self.get_git_commit),
            ("GET", "/repos/{owner}/{repo}/git/ref/{ref:.+}", self.get_ref),
            ("GET", "/repos/{owner}/{repo}/git/refs", self.list_refs),
            ("GET", "/repos/{owner}/{repo}/git/refs/{ref:.+}", self.get_refs),
            ("POST", "/repos/{owner}/{repo}/git/refs", self.create_ref),
            ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref:.+}", self.update_ref),
            ("DELETE", "/repos/{owner}/{repo}/git/refs/{ref:.+}", self.delete_ref),
            ("GET", "/repos/{owner}/{repo}/contents", self.get_contents),
            ("GET", "/repos/{owner}/{repo}/contents/{path:.*}", self.get_contents),
            ("PUT", "/repos/{owner}/{repo}/contents/{path:.+}", self.put_contents),
            ("DELETE", "/repos/{owner}/{repo}/contents/{path:.+}", self.delete_contents),
            ("GET", "/repos/{owner}/{repo}/commits", self.list_commits),
            ("GET", "/repos/{owner}/{repo}/commits/{ref:.+}", self.get_commit),
            ("GET", "/repos/{owner}/{repo}/branches", self.list_branches),
            ("GET", "/repos/{owner}/{repo}/branches/{branch:.+}", self.get_branch),
            *self.archive_api_routes(),
            *self.sync_api_routes(),
            *self.pull_api_routes(),
            *self.app_api_routes(),
        ]
        for method, path, handler in api:
            add(method, "/api/v3" + path, self._api_call(handler))
        add("*", "/api/v3/{tail:.*}", self._api_call(self.api_not_found))

        add("GET", "/{owner}/{repo}", self.page_repo)
        add("GET", "/{owner}/{repo}/tree/{branch:.+}", self.page_tree)
        add("GET", "/{owner}/{repo}/commit/{sha}", self.page_commit)
        add("GET", "/{owner}/{repo}/compare/{spec:.+}", self.page_compare)
        add("GET", "/{owner}/{repo}/blob/{ref}/{path:.+}", self.page_blob)
        add("GET", "/{owner}/{repo}/raw/{ref}/{path:.+}", self.raw_file)
        add("GET", "/{login}", self.page_user)
        add("GET", "/", self.page_home)

    # --- API plumbing ----------------------------------------------------------------------------------
    def _rate_headers(self, key: str, limit: int, count: bool = True) -> dict[str, str]:
        now = time.time()
        start, used = self.rate_used.get(key, (now, 0))
        if now - start >= RATE_WINDOW_S:
            start, used = now, 0
        if count:
            used += 1
            self.rate_used[key] = (start, used)
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
                "X-RateLimit-Reset": str(int(start + RATE_WINDOW_S)), "X-RateLimit-Used": str(used),
                "X-RateLimit-Resource": "core"}

    def _common_headers(self, request: web.Request, count: bool = True) -> dict[str, str]:
        token = self.tokens.get(bearer_token(request) or "")
        key = token.value if token else (request.remote or "anonymous")
        headers = self._rate_headers(key, RATE_LIMIT_PER_HOUR if token else RATE_LIMIT_ANONYMOUS, count=count)
        headers.update({"X-GitHub-Media-Type": "github.v3; format=json", "X-GitHub-Api-Version-Selected":
                        API_VERSION, "X-GitHub-Request-Id": secrets.token_hex(8).upper()})
        if token is not None and not token.revoked and token.installation_id is None:
            headers["X-OAuth-Scopes"] = ", ".join(token.scopes)
        return headers

    def _api_call(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            request[ACCEPTED_SCOPES] = ""
            try:
                response = await handler(request)
            except ApiError as error:
                response = json_response(error.body(), status=error.status, headers=error.headers)
            cached = not_modified(request, response)
            if cached is not None:  # a 304 costs no rate limit, as on GitHub
                response = cached
            headers = self._common_headers(request, count=cached is None)
            headers["X-Accepted-OAuth-Scopes"] = request[ACCEPTED_SCOPES]
            for name, value in headers.items():
                response.headers.setdefault(name, value)
            return response
        return wrapped

    def extra_headers(self, request: web.Request) -> dict[str, str]:
        return self._common_headers(request) if request.path.startswith("/api/v3") else {}

    def fault_preset(self, rule: FaultRule) -> tuple[int, Any, dict[str, str]]:
        kind = rule.kind
        if kind == "unauthorized":
            return 401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}, {}
        if kind in ("rate_limit", "secondary_rate_limit"):
            retry_after = int(rule.options.get("retry_after", 60))
            headers = {"Retry-After": str(retry_after)}
            if kind == "rate_limit":
                headers.update({"X-RateLimit-Limit": str(RATE_LIMIT_PER_HOUR), "X-RateLimit-Remaining": "0",
                                "X-RateLimit-Used": str(RATE_LIMIT_PER_HOUR),
                                "X-RateLimit-Reset": str(int(time.time()) + retry_after),
                                "X-RateLimit-Resource": "core"})
                message = "API rate limit exceeded for user ID 583231."
            else:
                message = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            status = rule.status or 403
            return status, {"message": message, "documentation_url": DOCS, "status": str(status)}, headers
        if kind == "forbidden":
            return 403, {"message": "Resource not accessible by integration", "documentation_url": DOCS,
                         "status": "403"}, {}
        if kind == "not_found":
            return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {}
        if kind == "unprocessable":
            return 422, {"message": "Validation Failed", "errors": [{"resource": "Repository",
                                                                     "code": "custom", "message": "invalid"}],
                         "documentation_url": DOCS, "status": "422"}, {}
        status = rule.status or 500
        return status, {"message": "Server Error"}, {}

    def _auth(self, request: web.Request, required: bool = True) -> tuple[User | None, Token | None]:
        value = bearer_token(request)
        if value is None:
            if required:
                raise ApiError(401, "Requires authentication")
            return None, None
        token = self.tokens.get(value)
        if token is None or token.revoked or token.login.lower() not in self.users or not token_usable(token):
            raise ApiError(401, "Bad credentials")
        return self.users[token.login.lower()], token

    @staticmethod
    def _has_scope(token: Token | None, *scopes: str) -> bool:
        return token is not None and any(s in token.scopes for s in scopes)

    def _repo(self, request: web.Request, write: bool = False) -> tuple[Repo, User | None, Token | None]:
        """The repository named in the path, if the caller may see it (and write to it when ``write``)."""
        user, token = self._auth(request, required=write)
        key = f"{request.match_info['owner']}/{request.match_info['repo']}".lower()
        repo = self.repos.get(key)
        if repo is None:
            raise ApiError(404, "Not Found")
        is_owner = user is not None and user.login.lower() == repo.owner.lower()
        in_installation = installation_allows(self, token, key)
        if in_installation is not None:  # an app's installation token reaches its repositories, only those
            if not in_installation:
                raise ApiError(404, "Not Found")
            return repo, user, token
        request[ACCEPTED_SCOPES] = "repo" if repo.private else "public_repo, repo"
        if repo.private and not (is_owner and self._has_scope(token, "repo")):
            raise ApiError(404, "Not Found")
        if write:
            may_write = self._has_scope(token, "repo") or (not repo.private and self._has_scope(token, "public_repo"))
            if not is_owner or not may_write:
                raise ApiError(404, "Not Found")
        return repo, user, token

    def _nonempty(self, repo: Repo) -> None:
        if repo.empty:
            raise ApiError(409, "Git Repository is empty.")

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json() if request.can_read_body else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "Problems parsing JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Problems parsing JSON")
        return body

    # --- JSON shapes -----------------------------------------------------------------------------------
    def simple_user_json(self, user: User) -> dict[str, Any]:
        api, login = self.api, user.login
        return {
            "login": login, "id": user.id, "node_id": node_id("User", user.id),
            "avatar_url": f"{self.base_url}/avatars/u/{user.id}?", "gravatar_id": "",
            "url": f"{api}/users/{login}", "html_url": f"{self.base_url}/{login}",
            "followers_url": f"{api}/users/{login}/followers",
            "following_url": f"{api}/users/{login}/following{{/other_user}}",
            "gists_url": f"{api}/users/{login}/gists{{/gist_id}}",
            "starred_url": f"{api}/users/{login}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/users/{login}/subscriptions",
            "organizations_url": f"{api}/users/{login}/orgs", "repos_url": f"{api}/users/{login}/repos",
            "events_url": f"{api}/users/{login}/events{{/privacy}}",
            "received_events_url": f"{api}/users/{login}/received_events", "type": "User",
            "user_view_type": "public", "site_admin": False,
        }

    def user_json(self, user: User, private: bool = False) -> dict[str, Any]:
        public_email = next((e["email"] for e in user.emails
                             if e.get("primary") and e.get("verified") and e.get("visibility") == "public"), None)
        repos = [r for r in self.repos.values() if r.owner.lower() == user.login.lower()]
        data = {
            **self.simple_user_json(user), "name": user.name, "company": None, "blog": "", "location": None,
            "email": public_email, "hireable": None, "bio": None, "twitter_username": None,
            "notification_email": public_email, "public_repos": sum(not r.private for r in repos),
            "public_gists": 0, "followers": 0, "following": 0, "created_at": iso(user.created_at),
            "updated_at": iso(user.created_at),
        }
        if private:
            private_count = sum(r.private for r in repos)
            data.update({"private_gists": 0, "total_private_repos": private_count,
                         "owned_private_repos": private_count, "disk_usage": 0, "collaborators": 0,
                         "two_factor_authentication": False,
                         "plan": {"name": "free", "space": 976562499, "collaborators": 0,
                                  "private_repos": 10000}})
        return data

    def repo_json(self, repo: Repo, viewer: User | None) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        owner = self.users.get(repo.owner.lower()) or User(repo.owner, 0, repo.owner, [])
        is_owner = viewer is not None and viewer.login.lower() == repo.owner.lower()
        host = urllib.parse.urlsplit(self.base_url).netloc
        size = sum(len(data) for kind, data in repo.store.objects.values() if kind == "blob") // 1024
        return {
            "id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
            "full_name": repo.full_name, "private": repo.private, "owner": self.simple_user_json(owner),
            "html_url": f"{self.base_url}/{repo.full_name}", "description": repo.description, "fork": False,
            "url": api, "forks_url": f"{api}/forks", "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}", "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks", "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events", "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}", "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}", "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}", "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}", "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers", "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers", "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}", "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}", "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}", "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges", "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads", "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}", "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}", "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments", "created_at": iso(repo.created_at),
            "updated_at": iso(repo.updated_at), "pushed_at": iso(repo.pushed_at) if repo.pushed_at else None,
            "git_url": f"git://{host}/{repo.full_name}.git", "ssh_url": f"git@{host}:{repo.full_name}.git",
            "clone_url": f"{self.base_url}/{repo.full_name}.git", "svn_url": f"{self.base_url}/{repo.full_name}",
            "homepage": repo.homepage, "size": size, "stargazers_count": 0, "watchers_count": 0,
            "language": None, "has_issues": True, "has_projects": True, "has_downloads": True,
            "has_wiki": True, "has_pages": False, "has_discussions": False, "forks_count": 0,
            "mirror_url": None, "archived": False, "disabled": False, "open_issues_count": 0, "license": None,
            "allow_forking": True, "is_template": False, "web_commit_signoff_required": False, "topics": [],
            "visibility": "private" if repo.private else "public", "forks": 0, "open_issues": 0,
            "watchers": 0, "default_branch": repo.default_branch,
            "permissions": {"admin": is_owner, "maintain": is_owner, "push": is_owner, "triage": is_owner,
                            "pull": is_owner or not repo.private},
            "network_count": 0, "subscribers_count": 1,
        }

    def ref_json(self, repo: Repo, ref: str) -> dict[str, Any]:
        sha = repo.refs[ref]
        api = f"{self.api}/repos/{repo.full_name}"
        return {"ref": ref, "node_id": node_id("Ref", f"{repo.id}:{ref}"), "url": f"{api}/git/{ref}",
                "object": {"sha": sha, "type": "commit", "url": f"{api}/git/commits/{sha}"}}

    def git_commit_json(self, repo: Repo, sha: str) -> dict[str, Any]:
        commit = repo.store.commit(sha)
        assert commit is not None
        api = f"{self.api}/repos/{repo.full_name}"
        return {
            "sha": sha, "node_id": node_id("Commit", sha[:12]), "url": f"{api}/git/commits/{sha}",
            "html_url": f"{self.base_url}/{repo.full_name}/commit/{sha}",
            "author": commit.author.as_json(), "committer": commit.committer.as_json(),
            "tree": {"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}"}, "message": commit.message,
            "parents": [{"sha": p, "url": f"{api}/git/commits/{p}",
                         "html_url": f"{self.base_url}/{repo.full_name}/commit/{p}"} for p in commit.parents],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                             "verified_at": None},
        }

    def _user_by_email(self, email: str) -> User | None:
        for user in self.users.values():
            if any(e["email"].lower() == email.lower() for e in user.emails):
                return user
        return None

    def repo_commit_json(self, repo: Repo, sha: str, with_files: bool = True) -> dict[str, Any]:
        commit = repo.store.commit(sha)
        assert commit is not None
        api = f"{self.api}/repos/{repo.full_name}"
        git = self.git_commit_json(repo, sha)
        author = self._user_by_email(commit.author.email)
        committer = self._user_by_email(commit.committer.email)
        data = {
            "sha": sha, "node_id": git["node_id"],
            "commit": {"author": git["author"], "committer": git["committer"], "message": commit.message,
                       "tree": git["tree"], "url": git["url"], "comment_count": 0,
                       "verification": git["verification"]},
            "url": f"{api}/commits/{sha}", "html_url": git["html_url"], "comments_url": f"{api}/commits/{sha}/comments",
            "author": self.simple_user_json(author) if author else None,
            "committer": self.simple_user_json(committer) if committer else None,
            "parents": [{"sha": p, "url": f"{api}/commits/{p}",
                         "html_url": f"{self.base_url}/{repo.full_name}/commit/{p}"} for p in commit.parents],
        }
        if with_files:
            files = self._diff_files(repo, commit.parents[0] if commit.parents else None, sha)
            additions = sum(f["additions"] for f in files)
            deletions = sum(f["deletions"] for f in files)
            data["stats"] = {"total": additions + deletions, "additions": additions, "deletions": deletions}
            data["files"] = files
        return data

    def _diff_files(self, repo: Repo, base: str | None, head: str) -> list[dict[str, Any]]:
        before = repo.store.files_at(base) if base else {}
        after = repo.store.files_at(head)
        files = []
        for path in sorted(set(before) | set(after)):
            old, new = before.get(path), after.get(path)
            if old == new:
                continue
            status = "added" if old is None else "removed" if new is None else "modified"
            old_lines = (old or b"").decode(errors="replace").splitlines()
            new_lines = (new or b"").decode(errors="replace").splitlines()
            diff = list(difflib.unified_diff(old_lines, new_lines, lineterm="", n=3))[2:]
            additions = sum(1 for line in diff if line.startswith("+"))
            deletions = sum(1 for line in diff if line.startswith("-"))
            blob = repo.store.put_blob(new if new is not None else old or b"")
            quoted = urllib.parse.quote(path)
            files.append({
                "sha": blob, "filename": path, "status": status, "additions": additions,
                "deletions": deletions, "changes": additions + deletions,
                "blob_url": f"{self.base_url}/{repo.full_name}/blob/{head}/{quoted}",
                "raw_url": f"{self.base_url}/{repo.full_name}/raw/{head}/{quoted}",
                "contents_url": f"{self.api}/repos/{repo.full_name}/contents/{quoted}?ref={head}",
                "patch": "\n".join(diff),
            })
        return files

    def content_json(self, repo: Repo, path: str, sha: str, size: int, ref: str,
                     data: bytes | None = None, kind: str = "file") -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        quoted = urllib.parse.quote(path)
        url = f"{api}/contents/{quoted}?ref={ref}"
        git_url = f"{api}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
        html_url = f"{self.base_url}/{repo.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{quoted}"
        result: dict[str, Any] = {
            "name": path.rsplit("/", 1)[-1], "path": path, "sha": sha, "size": size, "url": url,
            "html_url": html_url, "git_url": git_url,
            "download_url": None if kind == "dir" else f"{self.base_url}/{repo.full_name}/raw/{ref}/{quoted}",
            "type": kind, "_links": {"self": url, "git": git_url, "html": html_url},
        }
        if data is not None:
            result.update({"content": b64_lines(data), "encoding": "base64"})
        return result

    # --- users -----------------------------------------------------------------------------------------
    async def get_me(self, request: web.Request) -> web.Response:
        user, _ = self._auth(request)
        assert user is not None
        return json_response(self.user_json(user, private=True))

    async def get_emails(self, request: web.Request) -> web.Response:
        user, token = self._auth(request)
        assert user is not None
        request[ACCEPTED_SCOPES] = "user, read:user, user:email"
        if not self._has_scope(token, "user:email", "user"):
            raise ApiError(404, "Not Found")
        return json_response([{"email": e["email"], "primary": bool(e["primary"]), "verified": bool(e["verified"]),
                               "visibility": e.get("visibility")} for e in user.emails])

    async def get_user(self, request: web.Request) -> web.Response:
        self._auth(request, required=False)
        user = self.users.get(request.match_info["login"].lower())
        if user is None:
            raise ApiError(404, "Not Found")
        return json_response(self.user_json(user))

    async def rate_limit(self, request: web.Request) -> web.Response:
        token = self.tokens.get(bearer_token(request) or "")
        key = token.value if token else (request.remote or "anonymous")
        limit = RATE_LIMIT_PER_HOUR if token else RATE_LIMIT_ANONYMOUS
        headers = self._rate_headers(key, limit, count=False)
        core = {"limit": limit, "remaining": int(headers["X-RateLimit-Remaining"]),
                "reset": int(headers["X-RateLimit-Reset"]), "used": int(headers["X-RateLimit-Used"]),
                "resource": "core"}
        return json_response({"resources": {"core": core}, "rate": core})

    async def api_not_found(self, request: web.Request) -> web.Response:
        raise ApiError(404, "Not Found")

    # --- repositories ----------------------------------------------------------------------------------
    async def list_my_repos(self, request: web.Request) -> web.Response:
        user, token = self._auth(request)
        assert user is not None
        repos = [r for r in self.repos.values() if r.owner.lower() == user.login.lower()
                 and (not r.private or self._has_scope(token, "repo"))]
        repos.sort(key=lambda r: -r.updated_at)
        return self.paginated(request, [self.repo_json(r, user) for r in repos])

    async def create_repo(self, request: web.Request) -> web.Response:
        user, token = self._auth(request)
        assert user is not None
        body = await self._json_body(request)
        private = bool(body.get("private"))
        request[ACCEPTED_SCOPES] = "public_repo, repo"
        if not (self._has_scope(token, "repo") or (not private and self._has_scope(token, "public_repo"))):
            raise ApiError(404, "Not Found")
        name = str(body.get("name") or "").strip()
        if not name:
            raise ApiError(422, "Repository creation failed.",
                           errors=[{"resource": "Repository", "code": "missing_field", "field": "name"}])
        if not REPO_NAME_RE.match(name):
            name = re.sub(r"[^A-Za-z0-9._-]", "-", name)[:100]  # GitHub rewrites invalid characters
        if f"{user.login}/{name}".lower() in self.repos:
            raise ApiError(422, "Repository creation failed.", errors=[{
                "resource": "Repository", "code": "custom", "field": "name",
                "message": "name already exists on this account"}])
        repo = Repo(next(self._ids), user.login, name, private, body.get("description") or None,
                    homepage=body.get("homepage") or None)
        self.repos[repo.full_name.lower()] = repo
        if body.get("auto_init"):
            readme = f"# {name}\n" + (f"{repo.description}\n" if repo.description else "")
            self._commit_files(repo, repo.default_branch, {"README.md": readme.encode()}, "Initial commit",
                               self._signature(user, None))
        return json_response(self.repo_json(repo, user), status=201,
                             headers={"Location": f"{self.api}/repos/{repo.full_name}"})

    async def get_repo(self, request: web.Request) -> web.Response:
        repo, user, _ = self._repo(request)
        return json_response(self.repo_json(repo, user))

    async def edit_repo(self, request: web.Request) -> web.Response:
        repo, user, _ = self._repo(request, write=True)
        body = await self._json_body(request)
        new_name = body.get("name")
        if new_name and new_name != repo.name:
            if not REPO_NAME_RE.match(new_name):
                raise ApiError(422, "Validation Failed", errors=[{"resource": "Repository", "code": "invalid",
                                                                  "field": "name"}])
            new_key = f"{repo.owner}/{new_name}".lower()
            if new_key in self.repos and self.repos[new_key] is not repo:
                raise ApiError(422, "Repository creation failed.", errors=[{
                    "resource": "Repository", "code": "custom", "field": "name",
                    "message": "name already exists on this account"}])
            del self.repos[repo.full_name.lower()]
            repo.name = new_name
            self.repos[new_key] = repo
        if "description" in body:
            repo.description = body["description"] or None
        if "homepage" in body:
            repo.homepage = body["homepage"] or None
        if "private" in body:
            repo.private = bool(body["private"])
        if body.get("default_branch"):
            if f"refs/heads/{body['default_branch']}" not in repo.refs and not repo.empty:
                raise ApiError(422, "Validation Failed", errors=[{"resource": "Repository", "code": "invalid",
                                                                  "field": "default_branch"}])
            repo.default_branch = body["default_branch"]
        repo.updated_at = time.time()
        return json_response(self.repo_json(repo, user))

    async def delete_repo(self, request: web.Request) -> web.Response:
        repo, _, token = self._repo(request, write=True)
        request[ACCEPTED_SCOPES] = "delete_repo"
        if not self._has_scope(token, "delete_repo"):
            raise ApiError(403, "Must have admin rights to Repository.")
        del self.repos[repo.full_name.lower()]
        return web.Response(status=204)

    # --- git data: blobs, trees, commits ---------------------------------------------------------------
    async def create_blob(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request, write=True)
        self._nonempty(repo)
        body = await self._json_body(request)
        content = body.get("content")
        if not isinstance(content, str):
            raise ApiError(422, "Invalid request.\n\n\"content\" wasn't supplied.")
        encoding = body.get("encoding", "utf-8")
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=False)
            except ValueError as exc:
                raise ApiError(422, "Invalid request.\n\nInvalid base64 content.") from exc
        elif encoding in ("utf-8", "utf8"):
            data = content.encode()
        else:
            raise ApiError(422, f"Invalid request.\n\nencoding {encoding} is not a valid encoding.")
        sha = repo.store.put_blob(data)
        url = f"{self.api}/repos/{repo.full_name}/git/blobs/{sha}"
        return json_response({"url": url, "sha": sha}, status=201, headers={"Location": url})

    async def get_blob(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        self._nonempty(repo)
        sha = request.match_info["sha"]
        data = repo.store.get(sha, "blob")
        if data is None:
            raise ApiError(404, "Not Found")
        return json_response({"sha": sha, "node_id": node_id("Blob", sha[:12]), "size": len(data),
                              "url": f"{self.api}/repos/{repo.full_name}/git/blobs/{sha}",
                              "content": b64_lines(data), "encoding": "base64"})

    def tree_json(self, repo: Repo, sha: str, recursive: bool) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        entries: list[dict[str, Any]] = []

        def walk(tree_sha: str, prefix: str) -> None:
            for entry in repo.store.tree_entries(tree_sha) or []:
                path = prefix + entry.name
                item: dict[str, Any] = {"path": path, "mode": entry.mode, "type": entry.kind, "sha": entry.sha}
                if entry.kind == "blob":
                    item["size"] = len(repo.store.get(entry.sha) or b"")
                    item["url"] = f"{api}/git/blobs/{entry.sha}"
                elif entry.kind == "tree":
                    item["url"] = f"{api}/git/trees/{entry.sha}"
                entries.append(item)
                if recursive and entry.kind == "tree":
                    walk(entry.sha, path + "/")

        walk(sha, "")
        return {"sha": sha, "url": f"{api}/git/trees/{sha}", "tree": entries, "truncated": False}

    async def create_tree(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request, write=True)
        self._nonempty(repo)
        body = await self._json_body(request)
        items = body.get("tree")
        if not isinstance(items, list):
            raise ApiError(422, "Invalid tree info")
        flat: dict[str, tuple[str, str, str]] = {}
        if body.get("base_tree"):
            if repo.store.kind_of(body["base_tree"]) != "tree":
                raise ApiError(422, "Invalid tree info", errors=["base_tree is not a valid tree oid"])
            flat = repo.store.flatten(body["base_tree"])
        for item in items:
            self._apply_tree_item(repo, flat, item)
        sha = repo.store.build_tree(flat)
        url = f"{self.api}/repos/{repo.full_name}/git/trees/{sha}"
        return json_response(self.tree_json(repo, sha, recursive=False), status=201, headers={"Location": url})

    def _apply_tree_item(self, repo: Repo, flat: dict[str, tuple[str, str, str]], item: Any) -> None:
        if not isinstance(item, dict):
            raise ApiError(422, "Invalid tree info")
        path = item.get("path")
        if not isinstance(path, str) or not path or any(p in ("", ".", "..", ".git") for p in path.split("/")):
            raise ApiError(422, "tree.path contains a malformed path component")
        mode = str(item.get("mode") or FILE_MODE)
        kind = item.get("type") or ("tree" if mode in (TREE_MODE, "40000") else "blob")
        # Whatever sat at this path (a file, or a directory's contents) is replaced or removed.
        for existing in [p for p in flat if p == path or p.startswith(path + "/")]:
            del flat[existing]
        for position in range(len(path)):
            if path[position] == "/" and path[:position] in flat:
                del flat[path[:position]]
        if "content" in item and item["content"] is not None:
            if kind != "blob":
                raise ApiError(422, "Invalid tree info", errors=["content is only valid for blobs"])
            flat[path] = (mode, "blob", repo.store.put_blob(str(item["content"]).encode()))
            return
        if "sha" not in item:
            raise ApiError(422, "Invalid tree info", errors=["Must supply either tree.sha or tree.content"])
        sha = item["sha"]
        if sha is None:
            return  # sha: null deletes the path
        found = repo.store.kind_of(sha)
        if kind == "tree":
            if found != "tree":
                raise ApiError(422, "Invalid tree info", errors=[f"tree.sha {sha} is not a valid tree"])
            for sub, value in repo.store.flatten(sha, path + "/").items():
                flat[sub] = value
            return
        if kind == "commit":
            flat[path] = ("160000", "commit", sha)
            return
        if mode not in VALID_BLOB_MODES:
            raise ApiError(422, "Invalid tree info", errors=[f"tree.mode {mode} is not valid"])
        if found != "blob":
            raise ApiError(422, "Invalid tree info", errors=[f"tree.sha {sha} is not a valid blob"])
        flat[path] = (mode, "blob", sha)

    async def get_tree(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        self._nonempty(repo)
        sha = request.match_info["sha"]
        if repo.store.kind_of(sha) == "commit":
            sha = repo.store.commit(sha).tree  # type: ignore[union-attr]
        elif sha in (b.removeprefix("refs/heads/") for b in repo.refs):
            sha = repo.store.commit(repo.refs[f"refs/heads/{sha}"]).tree  # type: ignore[union-attr]
        if repo.store.kind_of(sha) != "tree":
            raise ApiError(404, "Not Found")
        recursive = request.query.get("recursive") not in (None, "", "0", "false")
        return json_response(self.tree_json(repo, sha, recursive))

    def _signature(self, user: User, given: Any) -> Signature:
        now = datetime.now(UTC).replace(microsecond=0)
        if isinstance(given, dict) and given.get("name") and given.get("email"):
            when = now
            if given.get("date"):
                try:
                    when = datetime.fromisoformat(str(given["date"]).replace("Z", "+00:00"))
                except ValueError as exc:
                    raise ApiError(422, "Invalid request.\n\nInvalid date.") from exc
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
            return Signature(str(given["name"]), str(given["email"]), when)
        email = user.primary_email() or f"{user.id}+{user.login}@users.noreply.github.com"
        return Signature(user.name or user.login, email, now)

    async def create_commit(self, request: web.Request) -> web.Response:
        repo, user, _ = self._repo(request, write=True)
        assert user is not None
        self._nonempty(repo)
        body = await self._json_body(request)
        message, tree, parents = body.get("message"), body.get("tree"), body.get("parents", [])
        if not isinstance(message, str) or not isinstance(tree, str):
            raise ApiError(422, "Invalid request.\n\n\"message\" and \"tree\" are required.")
        if repo.store.kind_of(tree) != "tree":
            raise ApiError(422, "Tree SHA does not exist")
        if not isinstance(parents, list) or any(repo.store.kind_of(p) != "commit" for p in parents):
            raise ApiError(422, "Parent SHA does not exist or is not a commit object")
        author = self._signature(user, body.get("author"))
        committer = self._signature(user, body.get("committer")) if body.get("committer") else author
        sha = repo.store.put_commit(CommitObject(tree, tuple(parents), author, committer, message))
        url = f"{self.api}/repos/{repo.full_name}/git/commits/{sha}"
        return json_response(self.git_commit_json(repo, sha), status=201, headers={"Location": url})

    async def get_git_commit(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        self._nonempty(repo)
        sha = request.match_info["sha"]
        if repo.store.kind_of(sha) != "commit":
            raise ApiError(404, "Not Found")
        return json_response(self.git_commit_json(repo, sha))

    # --- refs ------------------------------------------------------------------------------------------
    @staticmethod
    def _full_ref(ref: str) -> str:
        return ref if ref.startswith("refs/") else f"refs/{ref}"

    async def get_ref(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        self._nonempty(repo)
        ref = self._full_ref(request.match_info["ref"])
        if ref not in repo.refs:
            raise ApiError(404, "Not Found")
        return json_response(self.ref_json(repo, ref))

    async def get_refs(self, request: web.Request) -> web.Response:
        """An exact ref answers that ref; a prefix (``heads``) answers the list of matching refs."""
        repo, _, _ = self._repo(request)
        self._nonempty(repo)
        ref = self._full_ref(request.match_info["ref"])
        if ref in repo.refs:
            return json_response(self.ref_json(repo, ref))
        matching = sorted(r for r in repo.refs if r.startswith(ref.rstrip("/") + "/"))
        if not matching:
            raise ApiError(404, "Not Found")
        return json_response([self.ref_json(repo, r) for r in matching])

    async def list_refs(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        self._nonempty(repo)
        return json_response([self.ref_json(repo, r) for r in sorted(repo.refs)])

    async def create_ref(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request, write=True)
        self._nonempty(repo)
        body = await self._json_body(request)
        ref, sha = body.get("ref"), body.get("sha")
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name is not valid")
        if not isinstance(sha, str) or repo.store.kind_of(sha) != "commit":
            raise ApiError(422, "Object does not exist")
        if ref in repo.refs:
            raise ApiError(422, "Reference already exists")
        repo.refs[ref] = sha
        repo.pushed_at = time.time()
        url = f"{self.api}/repos/{repo.full_name}/git/{ref}"
        return json_response(self.ref_json(repo, ref), status=201, headers={"Location": url})

    async def update_ref(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request, write=True)
        self._nonempty(repo)
        body = await self._json_body(request)
        ref = self._full_ref(request.match_info["ref"])
        sha = body.get("sha")
        if ref not in repo.refs:
            raise ApiError(422, "Reference does not exist")
        if not isinstance(sha, str) or repo.store.kind_of(sha) != "commit":
            raise ApiError(422, "Object does not exist")
        if not body.get("force") and not repo.store.is_ancestor(repo.refs[ref], sha):
            raise ApiError(422, "Update is not a fast forward")
        if self.is_protected(repo, ref):
            raise ApiError(422, f"Protected branch update failed for {ref}.")
        repo.refs[ref] = sha
        repo.pushed_at = time.time()
        return json_response(self.ref_json(repo, ref))

    async def delete_ref(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request, write=True)
        self._nonempty(repo)
        ref = self._full_ref(request.match_info["ref"])
        if ref not in repo.refs:
            raise ApiError(422, "Reference does not exist")
        del repo.refs[ref]
        return web.Response(status=204)

    # --- contents --------------------------------------------------------------------------------------
    def _commit_files(self, repo: Repo, branch: str, changes: dict[str, bytes | None], message: str,
                      author: Signature, committer: Signature | None = None,
                      submodules: dict[str, str] | None = None) -> str:
        """A new commit on ``branch`` applying ``changes`` (None deletes) and ``submodules`` (path -> the
        commit sha a gitlink points at); creates the branch if new."""
        head = repo.head(branch)
        flat = repo.store.flatten(repo.store.commit(head).tree) if head else {}  # type: ignore[union-attr]
        for path, data in changes.items():
            for existing in [p for p in flat if p == path or p.startswith(path + "/")]:
                del flat[existing]
            if data is not None:
                flat[path] = (FILE_MODE, "blob", repo.store.put_blob(data))
        for path, target in (submodules or {}).items():
            flat[path] = ("160000", "commit", target)
        tree = repo.store.build_tree(flat)
        commit = CommitObject(tree, (head,) if head else (), author, committer or author, message)
        sha = repo.store.put_commit(commit)
        repo.refs[f"refs/heads/{branch}"] = sha
        repo.pushed_at = repo.updated_at = time.time()
        return sha

    def _branch_head(self, repo: Repo, branch: str | None) -> tuple[str, str | None]:
        name = branch or repo.default_branch
        head = repo.head(name)
        if head is None and not repo.empty:
            raise ApiError(404, f"Branch {name} not found")
        return name, head

    def _resolve(self, repo: Repo, ref: str | None) -> str | None:
        """A branch name, full ref or commit sha -> commit sha."""
        if not ref:
            return repo.head()
        for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
            if candidate in repo.refs:
                return repo.refs[candidate]
        if repo.store.kind_of(ref) == "commit":
            return ref
        return None

    async def get_contents(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        if repo.empty:
            raise ApiError(404, "This repository is empty.")
        ref = request.query.get("ref") or repo.default_branch
        head = self._resolve(repo, ref)
        if head is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        path = request.match_info.get("path", "").strip("/")
        flat = repo.store.flatten(repo.store.commit(head).tree)  # type: ignore[union-attr]
        if path in flat:
            _, _, sha = flat[path]
            data = repo.store.get(sha) or b""
            return json_response(self.content_json(repo, path, sha, len(data), ref, data))
        prefix = path + "/" if path else ""
        children: dict[str, str] = {}
        for file_path in flat:
            if file_path.startswith(prefix):
                head_name, sep, _ = file_path[len(prefix):].partition("/")
                children[head_name] = "dir" if sep else "file"
        if not children:
            raise ApiError(404, "Not Found")
        listing = []
        for name in sorted(children):
            child = prefix + name
            if children[name] == "file":
                sha = flat[child][2]
                listing.append(self.content_json(repo, child, sha, len(repo.store.get(sha) or b""), ref))
            else:
                sub = {p[len(child) + 1:]: v for p, v in flat.items() if p.startswith(child + "/")}
                listing.append(self.content_json(repo, child, repo.store.build_tree(sub), 0, ref, kind="dir"))
        return json_response(listing)

    async def put_contents(self, request: web.Request) -> web.Response:
        repo, user, _ = self._repo(request, write=True)
        assert user is not None
        body = await self._json_body(request)
        path = request.match_info["path"].strip("/")
        if not isinstance(body.get("message"), str):
            raise ApiError(422, "Invalid request.\n\n\"message\" wasn't supplied.")
        if not isinstance(body.get("content"), str):
            raise ApiError(422, "Invalid request.\n\n\"content\" wasn't supplied.")
        try:
            data = base64.b64decode(body["content"], validate=False)
        except ValueError as exc:
            raise ApiError(422, "content is not valid Base64") from exc
        branch, head = self._branch_head(repo, body.get("branch"))
        existing = repo.store.flatten(repo.store.commit(head).tree).get(path) if head else None  # type: ignore[union-attr]
        if existing is not None:
            if not body.get("sha"):
                raise ApiError(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
            if body["sha"] != existing[2]:
                raise ApiError(409, f"{path} does not match {body['sha']}")
        author = self._signature(user, body.get("author"))
        committer = self._signature(user, body.get("committer")) if body.get("committer") else author
        sha = self._commit_files(repo, branch, {path: data}, body["message"], author, committer)
        blob = repo.store.put_blob(data)
        content = self.content_json(repo, path, blob, len(data), branch)
        return json_response({"content": content, "commit": self.git_commit_json(repo, sha)},
                             status=200 if existing else 201)

    async def delete_contents(self, request: web.Request) -> web.Response:
        repo, user, _ = self._repo(request, write=True)
        assert user is not None
        body = await self._json_body(request)
        path = request.match_info["path"].strip("/")
        if repo.empty:
            raise ApiError(404, "Not Found")
        branch, head = self._branch_head(repo, body.get("branch"))
        existing = repo.store.flatten(repo.store.commit(head).tree).get(path)  # type: ignore[union-attr]
        if existing is None:
            raise ApiError(404, "Not Found")
        if not body.get("sha"):
            raise ApiError(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
        if body["sha"] != existing[2]:
            raise ApiError(409, f"{path} does not match {body['sha']}")
        author = self._signature(user, body.get("author"))
        sha = self._commit_files(repo, branch, {path: None}, str(body.get("message") or f"Delete {path}"), author)
        return json_response({"content": None, "commit": self.git_commit_json(repo, sha)})

    # --- commits and branches --------------------------------------------------------------------------
    async def get_commit(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        self._nonempty(repo)
        sha = self._resolve(repo, request.match_info["ref"])
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {request.match_info['ref']}")
        return json_response(self.repo_commit_json(repo, sha))

    async def list_commits(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        self._nonempty(repo)
        sha = self._resolve(repo, request.query.get("sha"))
        per_page = min(int(request.query.get("per_page") or 30), 100)
        listing = []
        while sha and len(listing) < per_page:
            listing.append(self.repo_commit_json(repo, sha, with_files=False))
            parents = repo.store.commit(sha).parents  # type: ignore[union-attr]
            sha = parents[0] if parents else None
        return json_response(listing)

    def branch_json(self, repo: Repo, name: str) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}/branches/{name}"
        return {"name": name, "commit": self.repo_commit_json(repo, repo.refs[f"refs/heads/{name}"], False),
                "_links": {"self": api, "html": f"{self.base_url}/{repo.full_name}/tree/{name}"},
                "protected": False,
                "protection": {"enabled": False, "required_status_checks": {
                    "enforcement_level": "off", "contexts": [], "checks": []}},
                "protection_url": f"{api}/protection"}

    async def list_branches(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        branches = sorted(r.removeprefix("refs/heads/") for r in repo.refs if r.startswith("refs/heads/"))
        api = f"{self.api}/repos/{repo.full_name}"
        return json_response([{"name": b, "commit": {"sha": repo.refs[f"refs/heads/{b}"],
                                                     "url": f"{api}/commits/{repo.refs[f'refs/heads/{b}']}"},
                               "protected": False} for b in branches])

    async def get_branch(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)
        name = request.match_info["branch"]
        if f"refs/heads/{name}" not in repo.refs:
            raise ApiError(404, "Branch not found")
        return json_response(self.branch_json(repo, name))

    # --- OAuth web flow --------------------------------------------------------------------------------
    @staticmethod
    def _with_query(url: str, params: dict[str, str | None]) -> str:
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query += [(k, v) for k, v in params.items() if v is not None]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    def _redirect_allowed(self, app: OAuthApp, redirect_uri: str) -> bool:
        return app.callback_url is None or redirect_uri.startswith(app.callback_url)

    async def authorize_page(self, request: web.Request) -> web.Response:
        query = request.query
        app = self.apps.get(query.get("client_id", ""))
        if app is None:
            return html_page("Not Found", "<div class=card><h1>404</h1><p>This OAuth application was not "
                             "found. Check the <code>client_id</code>.</p></div>", status=404)
        redirect_uri = query.get("redirect_uri") or app.callback_url
        if not redirect_uri:
            return html_page("Bad request", "<div class=card><h1>Missing redirect_uri</h1><p>The application "
                             "has no callback URL; pass <code>redirect_uri</code>.</p></div>", status=400)
        if not self._redirect_allowed(app, redirect_uri):
            assert app.callback_url is not None
            raise web.HTTPFound(self._with_query(app.callback_url, {
                "error": "redirect_uri_mismatch",
                "error_description": "The redirect_uri MUST match the registered callback URL for this application.",
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch",
                "state": query.get("state")}))
        return self._consent_page(app, redirect_uri, query.get("scope", ""), query.get("state"))

    def _consent_page(self, app: OAuthApp, redirect_uri: str, scope: str, state: str | None,
                      error: str | None = None, status: int = 200) -> web.Response:
        esc = html.escape
        scopes = [s for s in re.split(r"[\s,]+", scope) if s]
        scope_items = "".join(f"<li><strong>{esc(s)}</strong> <span class=muted>{esc(SCOPE_DESCRIPTIONS.get(s, ''))}"
                              "</span></li>" for s in scopes) or "<li>Public information only</li>"
        users = "".join(
            f'<label><input type=radio name=login value="{esc(u.login)}"{" checked" if i == 0 else ""}> '
            f"<strong>{esc(u.login)}</strong> <span class=muted>{esc(u.name or '')}</span></label>"
            for i, u in enumerate(sorted(self.users.values(), key=lambda u: u.login.lower())))
        hidden = "".join(f'<input type=hidden name={name} value="{esc(value)}">' for name, value in
                         (("client_id", app.client_id), ("redirect_uri", redirect_uri), ("scope", scope),
                          ("state", state)) if value is not None)
        host = urllib.parse.urlsplit(redirect_uri).netloc
        error_html = f'<p class=notice role=alert>{esc(error)}</p>' if error else ""
        body = (
            "<div class=card>"
            f"<h1>Authorize {esc(app.name)}</h1>"
            f"<p class=muted>{esc(app.name)} wants to access your sandbox GitHub account.</p>"
            f"<h2>Requested permissions</h2><ul class=scopes>{scope_items}</ul>"
            f'<form method=post action="/login/oauth/authorize">{hidden}'
            f"<fieldset><legend>Sign in as</legend>{users}"
            '<label for=new_login>…or a new sandbox user</label>'
            '<input type=text id=new_login name=new_login placeholder="new-login" autocomplete=off '
            'pattern="[A-Za-z0-9][A-Za-z0-9\\-]{0,38}">'
            f"{error_html}</fieldset>"
            "<div class=actions><button class=primary type=submit name=action value=authorize>Authorize</button>"
            "<button type=submit name=action value=cancel>Cancel</button></div></form>"
            f"<p class=muted>Authorizing will redirect to <code>{esc(host)}</code>.</p></div>"
        )
        return html_page(f"Authorize {app.name}", body, status=status)

    async def authorize_submit(self, request: web.Request) -> web.Response:
        form = await request.post()
        app = self.apps.get(str(form.get("client_id", "")))
        redirect_uri = str(form.get("redirect_uri", ""))
        if app is None or not redirect_uri or not self._redirect_allowed(app, redirect_uri):
            return html_page("Bad request", "<div class=card><h1>Invalid authorization request</h1></div>",
                             status=400)
        state = form.get("state")
        state_value = str(state) if state is not None else None
        scope = str(form.get("scope", ""))
        if form.get("action") == "cancel":
            raise web.HTTPFound(self._with_query(redirect_uri, {
                "error": "access_denied", "error_description": "The user has denied your application access.",
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied",
                "state": state_value}))
        login = str(form.get("new_login") or "").strip() or str(form.get("login") or "").strip()
        if not LOGIN_RE.match(login):
            return self._consent_page(app, redirect_uri, scope, state_value, status=400,
                                      error="Pick a user or type a login: letters, digits and hyphens.")
        user = self.users.get(login.lower()) or self.create_user(login)
        code = secrets.token_hex(10)
        self.grants[code] = Grant(code, app.client_id, user.login, [s for s in re.split(r"[\s,]+", scope) if s],
                                  redirect_uri, time.time())
        raise web.HTTPFound(self._with_query(redirect_uri, {"code": code, "state": state_value}))

    async def access_token(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            params = {k: str(v) for k, v in (await request.json()).items()}
        else:
            params = {k: str(v) for k, v in (await request.post()).items()}
        params.update({k: v for k, v in request.query.items() if k not in params})
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            decoded = base64.b64decode(auth[6:]).decode()
            basic_id, _, basic_secret = decoded.partition(":")
            client_id = urllib.parse.unquote(basic_id)
            client_secret = urllib.parse.unquote(basic_secret)
        wants_json = "application/json" in request.headers.get("Accept", "")
        app = self.apps.get(client_id or "")
        if app is None or app.client_secret != client_secret:
            return self._token_answer(wants_json, {
                "error": "incorrect_client_credentials",
                "error_description": "The client_id and/or client_secret passed are incorrect.",
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials"})
        grant = self.grants.get(params.get("code", ""))
        if (grant is None or grant.used or grant.client_id != app.client_id
                or time.time() - grant.issued > OAUTH_CODE_TTL_S):
            return self._token_answer(wants_json, {
                "error": "bad_verification_code", "error_description": "The code passed is incorrect or expired.",
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"})
        if params.get("redirect_uri") and params["redirect_uri"] != grant.redirect_uri:
            return self._token_answer(wants_json, {
                "error": "redirect_uri_mismatch",
                "error_description": "The redirect_uri MUST match the registered callback URL for this application.",
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#redirect-uri-mismatch2"})
        grant.used = True
        token = self.issue_token(grant.login, grant.scopes)
        return self._token_answer(wants_json, {"access_token": token.value, "token_type": "bearer",
                                               "scope": ",".join(grant.scopes)})

    @staticmethod
    def _token_answer(wants_json: bool, data: dict[str, str]) -> web.Response:
        # GitHub answers 200 even for errors, form-encoded unless JSON was asked for.
        if wants_json:
            return json_response(data)
        return web.Response(text=urllib.parse.urlencode(data), content_type="application/x-www-form-urlencoded")

    # --- HTML pages ------------------------------------------------------------------------------------
    def _page_repo(self, request: web.Request) -> Repo:
        repo = self.repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}".lower())
        if repo is None:
            raise web.HTTPNotFound(text="Repository not found")
        return repo

    def _files_table(self, repo: Repo, ref: str, files: dict[str, bytes]) -> str:
        esc = html.escape
        rows = "".join(
            f'<tr><td><a href="/{esc(repo.full_name)}/blob/{esc(ref)}/{esc(urllib.parse.quote(p))}">{esc(p)}</a>'
            f"</td><td>{len(d)} bytes</td></tr>" for p, d in sorted(files.items()))
        return f"<table><tr><th>File</th><th>Size</th></tr>{rows}</table>" if rows else "<p>No files.</p>"

    def _repo_header(self, repo: Repo, subtitle: str) -> str:
        esc = html.escape
        badge = "Private" if repo.private else "Public"
        return (f'<header class=bar>GitHub (sandbox)</header><h1><a href="/{esc(repo.owner)}">{esc(repo.owner)}</a>'
                f' / <a href="/{esc(repo.full_name)}">{esc(repo.name)}</a> <small class=muted>{badge}</small></h1>'
                f"<p class=muted>{esc(repo.description or '')}</p><h2>{subtitle}</h2>")

    async def page_repo(self, request: web.Request) -> web.Response:
        repo = self._page_repo(request)
        return self._tree_page(repo, repo.default_branch)

    async def page_tree(self, request: web.Request) -> web.Response:
        return self._tree_page(self._page_repo(request), request.match_info["branch"])

    def _tree_page(self, repo: Repo, ref: str) -> web.Response:
        esc = html.escape
        head = self._resolve(repo, ref)
        if head is None:
            body = self._repo_header(repo, "This repository is empty") + "<p>Nothing has been pushed yet.</p>"
            return html_page(repo.full_name, f"<div class=card>{body}</div>", wide=True)
        commit = repo.store.commit(head)
        assert commit is not None
        files = repo.store.files_at(head)
        readme = files.get("README.md")
        body = (self._repo_header(repo, f"Branch {esc(ref)}")
                + f'<p>Latest commit <a href="/{esc(repo.full_name)}/commit/{head}"><code>{head[:7]}</code></a> '
                f"{esc(commit.message.splitlines()[0] if commit.message else '')} "
                f"<span class=muted>by {esc(commit.author.name)}</span></p>"
                + self._files_table(repo, ref, files)
                + (f"<h2>README.md</h2><pre>{esc(readme.decode(errors='replace'))}</pre>" if readme else ""))
        return html_page(repo.full_name, f"<div class=card>{body}</div>", wide=True)

    def _diff_html(self, repo: Repo, base: str | None, head: str) -> str:
        esc = html.escape
        parts = []
        for changed in self._diff_files(repo, base, head):
            lines = []
            for line in changed["patch"].splitlines():
                css = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
                lines.append(f'<span class="{css}">{esc(line)}</span>' if css else esc(line))
            parts.append(f"<h2>{esc(changed['filename'])} <small class=muted>{changed['status']} "
                         f"+{changed['additions']} −{changed['deletions']}</small></h2><pre>" + "\n".join(lines)
                         + "</pre>")
        return "".join(parts) or "<p>No changes.</p>"

    async def page_commit(self, request: web.Request) -> web.Response:
        esc = html.escape
        repo = self._page_repo(request)
        sha = self._resolve(repo, request.match_info["sha"])
        commit = repo.store.commit(sha) if sha else None
        if sha is None or commit is None:
            raise web.HTTPNotFound(text="Commit not found")
        parents = " ".join(f'<a href="/{esc(repo.full_name)}/commit/{p}"><code>{p[:7]}</code></a>'
                           for p in commit.parents) or "none"
        body = (self._repo_header(repo, f"Commit <code>{sha[:7]}</code>")
                + f"<pre>{esc(commit.message)}</pre><p class=muted>{esc(commit.author.name)} "
                f"&lt;{esc(commit.author.email)}&gt; · {esc(commit.author.as_json()['date'])} · parents {parents}</p>"
                + self._diff_html(repo, commit.parents[0] if commit.parents else None, sha))
        return html_page(f"Commit {sha[:7]} · {repo.full_name}", f"<div class=card>{body}</div>", wide=True)

    async def page_compare(self, request: web.Request) -> web.Response:
        esc = html.escape
        repo = self._page_repo(request)
        spec = request.match_info["spec"]
        base_ref, _, head_ref = spec.partition("...")
        if not head_ref:
            base_ref, _, head_ref = spec.partition("..")
        base, head = self._resolve(repo, base_ref), self._resolve(repo, head_ref)
        if base is None or head is None:
            raise web.HTTPNotFound(text="Nothing to compare")
        commits = []
        sha: str | None = head
        while sha and sha != base and len(commits) < 250:
            commit = repo.store.commit(sha)
            assert commit is not None
            commits.append(f'<li><a href="/{esc(repo.full_name)}/commit/{sha}"><code>{sha[:7]}</code></a> '
                           f"{esc(commit.message.splitlines()[0] if commit.message else '')}</li>")
            sha = commit.parents[0] if commit.parents else None
        body = (self._repo_header(repo, f"Comparing <code>{esc(base_ref)}</code>…<code>{esc(head_ref)}</code>")
                + f"<ul>{''.join(commits) or '<li>No commits.</li>'}</ul>" + self._diff_html(repo, base, head))
        return html_page(f"Compare · {repo.full_name}", f"<div class=card>{body}</div>", wide=True)

    def _file_at(self, request: web.Request) -> tuple[Repo, bytes]:
        repo = self._page_repo(request)
        head = self._resolve(repo, request.match_info["ref"])
        data = repo.store.files_at(head).get(request.match_info["path"]) if head else None
        if data is None:
            raise web.HTTPNotFound(text="File not found")
        return repo, data

    async def page_blob(self, request: web.Request) -> web.Response:
        esc = html.escape
        repo, data = self._file_at(request)
        path = request.match_info["path"]
        body = (self._repo_header(repo, f"{esc(path)} <small class=muted>at {esc(request.match_info['ref'])}</small>")
                + f"<pre><code>{esc(data.decode(errors='replace'))}</code></pre>")
        return html_page(f"{path} · {repo.full_name}", f"<div class=card>{body}</div>", wide=True)

    async def raw_file(self, request: web.Request) -> web.Response:
        _, data = self._file_at(request)
        return web.Response(body=data, content_type="text/plain", charset="utf-8")

    async def page_user(self, request: web.Request) -> web.Response:
        esc = html.escape
        user = self.users.get(request.match_info["login"].lower())
        if user is None:
            raise web.HTTPNotFound(text="User not found")
        repos = sorted(r.name for r in self.repos.values() if r.owner.lower() == user.login.lower())
        items = "".join(f'<li><a href="/{esc(user.login)}/{esc(n)}">{esc(n)}</a></li>' for n in repos)
        body = (f"<header class=bar>GitHub (sandbox)</header><h1>{esc(user.name or user.login)}</h1>"
                f"<p class=muted>@{esc(user.login)} · id {user.id}</p><h2>Repositories</h2>"
                f"<ul>{items or '<li>No repositories yet.</li>'}</ul>")
        return html_page(user.login, f"<div class=card>{body}</div>", wide=True)

    async def page_home(self, request: web.Request) -> web.Response:
        esc = html.escape
        items = "".join(f'<li><a href="/{esc(u.login)}">{esc(u.login)}</a></li>'
                        for u in sorted(self.users.values(), key=lambda u: u.login.lower()))
        body = ("<header class=bar>GitHub (sandbox)</header><h1>Sandbox GitHub</h1>"
                f"<p class=muted>An emulator for local development. Users:</p><ul>{items}</ul>")
        return html_page("GitHub (sandbox)", f"<div class=card>{body}</div>", wide=True)

    # --- control ---------------------------------------------------------------------------------------
    async def _control_create_user(self, request: web.Request) -> web.Response:
        body = await request.json()
        login = str(body.get("login") or "")
        if not LOGIN_RE.match(login):
            return json_response({"error": "invalid login"}, status=400)
        user = self.create_user(login, body.get("name"), body.get("emails"), body.get("id"))
        return json_response(self.user_json(user) | {"emails": user.emails})

    async def _control_users(self, request: web.Request) -> web.Response:
        return json_response({"users": [self.user_json(u) | {"emails": u.emails} for u in self.users.values()]})

    async def _control_issue_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = self.users.get(str(body.get("login", "")).lower())
        if user is None:
            return json_response({"error": "unknown login"}, status=404)
        return json_response({"token": self.issue_token(user.login, list(body.get("scopes") or [])).value})

    async def _control_revoke_token(self, request: web.Request) -> web.Response:
        token = self.tokens.get((await request.json()).get("token", ""))
        if token is None:
            return json_response({"error": "unknown token"}, status=404)
        token.revoked = True
        return json_response({"ok": True})

    async def _control_oauth_app(self, request: web.Request) -> web.Response:
        body = await request.json()
        app = OAuthApp(body["client_id"], body["client_secret"], body.get("name") or "OAuth app",
                       body.get("callback_url"))
        self.apps[app.client_id] = app
        return json_response(app.__dict__)

    async def _control_repos(self, request: web.Request) -> web.Response:
        return json_response({"repos": sorted(r.full_name for r in self.repos.values())})

    async def _control_files(self, request: web.Request) -> web.Response:
        repo = self.repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}".lower())
        if repo is None:
            return json_response({"error": "unknown repository"}, status=404)
        head = self._resolve(repo, request.query.get("ref"))
        files = repo.store.files_at(head) if head else {}
        return json_response({p: d.decode(errors="replace") for p, d in sorted(files.items())})

    async def _control_push(self, request: web.Request) -> web.Response:
        repo = self.repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}".lower())
        if repo is None:
            return json_response({"error": "unknown repository"}, status=404)
        body = await request.json()
        author_spec = body.get("author") or {"name": "Someone Else", "email": "someone@example.com"}
        author = Signature(author_spec["name"], author_spec["email"],
                           datetime.now(UTC).replace(microsecond=0))
        changes: dict[str, bytes | None] = {
            p: (c.encode() if c is not None else None) for p, c in (body.get("files") or {}).items()}
        changes.update({p: base64.b64decode(c) for p, c in (body.get("files_b64") or {}).items()})
        sha = self._commit_files(repo, body.get("branch") or repo.default_branch, changes,
                                 body.get("message") or "Edit from elsewhere", author,
                                 submodules=body.get("submodules") or {})
        return json_response({"commit_sha": sha})
