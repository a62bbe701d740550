"""The GitHub emulator's GitHub Apps (a mixin of `GitHubEmulator`).

An app is registered with its id, slug and RSA public key; API calls as the app carry
`Authorization: Bearer <JWT>` signed RS256 by the matching private key, checked here as GitHub checks
it (signature, `iss` = the app id, `exp` in the future and at most 10 minutes after `iat`).

API (under `/api/v3`):
- `GET /app/installations` (JWT): the app's installations;
- `GET /repos/{o}/{r}/installation` (JWT): the installation covering a repository, 404 when none;
- `POST /app/installations/{id}/access_tokens` (JWT): 201 `{"token": "ghs_…", "expires_at", "permissions",
  "repository_selection"}`; the token reaches exactly the installation's repositories (404 elsewhere,
  as on GitHub) and answers 401 "Bad credentials" once expired;
- `GET /installation/repositories` (installation token): `{"total_count", "repositories"}`;
- `GET /repos/{o}/{r}/collaborators/{login}/permission`: `{"permission": "admin"|"none", "user"}`.

Control:
| method and path | body | answer |
| --- | --- | --- |
| `POST /_emulator/apps` | `{"app_id", "slug", "public_key" (PEM), "token_ttl_s"?: 3600}` | the app |
| `POST /_emulator/apps/{app_id}/installations` | `{"account": login, "repos": ["owner/name", ...]}` | `{"id"}` |
| `POST /_emulator/installations/{id}/remove` | `{"repo": "owner/name"}` (or `{}`: the whole installation) | `{"ok"}` |
| `GET /github-apps/{slug}/installations/new` | | an HTML page (where a person installs the app) |
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from sandbox.emulators.base import bearer_token, html_page, json_response

# GitHub refuses app JWTs whose lifetime exceeds ten minutes (a minute of clock drift allowed here).
MAX_JWT_LIFETIME_S = 11 * 60


@dataclass
class GithubApp:
    app_id: str
    slug: str
    public_key: str
    token_ttl_s: int = 3600


@dataclass
class AppInstallation:
    id: int
    app_id: str
    account: str
    repos: set[str] = field(default_factory=set)  # "owner/name" lowercased


class AppRoutes:
    users: dict[str, Any]
    repos: dict[str, Any]
    tokens: dict[str, Any]

    def reset_apps(self) -> None:
        self.github_apps: dict[str, GithubApp] = {}
        self.installations: dict[int, AppInstallation] = {}
        self._installation_ids = itertools.count(41_000_000)

    def app_api_routes(self) -> list[tuple[str, str, Any]]:
        return [("GET", "/app/installations", self.list_installations),
                ("GET", "/repos/{owner}/{repo}/installation", self.repo_installation),
                ("POST", "/app/installations/{id:\\d+}/access_tokens", self.create_installation_token),
                ("GET", "/installation/repositories", self.installation_repositories),
                ("GET", "/repos/{owner}/{repo}/collaborators/{login}/permission", self.collaborator_permission)]

    def add_app_control_routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("POST", "/_emulator/apps", self._control_register_app)
        add("POST", "/_emulator/apps/{app_id}/installations", self._control_install)
        add("POST", "/_emulator/installations/{id}/remove", self._control_remove_installation)
        add("GET", "/github-apps/{slug}/installations/new", self.page_install_app)

    # --- the app's JWT -------------------------------------------------------------------------------
    def _calling_app(self, request: web.Request) -> GithubApp:
        from sandbox.emulators.github_emulator import ApiError

        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer ") or header.count(".") != 2:
            raise ApiError(401, "A JSON web token could not be decoded")
        encoded = header.split(" ", 1)[1].strip()
        try:
            claims = jwt.decode(encoded, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise ApiError(401, "A JSON web token could not be decoded") from exc
        app = self.github_apps.get(str(claims.get("iss", "")))
        if app is None:
            raise ApiError(401, "Integration not found")
        try:
            claims = jwt.decode(encoded, app.public_key, algorithms=["RS256"], options={"require": ["exp", "iat", "iss"]})
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "'Expiration time' claim ('exp') must be a numeric value representing the future "
                                "time at which the assertion expires") from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "A JSON web token could not be decoded") from exc
        if int(claims["exp"]) - int(claims["iat"]) > MAX_JWT_LIFETIME_S:
            raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
        return app

    def installation_json(self, installation: AppInstallation) -> dict[str, Any]:
        user = self.users.get(installation.account.lower())
        account = {"login": user.login if user else installation.account, "id": user.id if user else 0,
                   "type": "User"}
        return {"id": installation.id, "app_id": int(installation.app_id) if installation.app_id.isdigit() else 0,
                "app_slug": self.github_apps[installation.app_id].slug, "account": account,
                "repository_selection": "selected", "target_type": "User",
                "access_tokens_url": f"{self.api}/app/installations/{installation.id}/access_tokens"}  # type: ignore[attr-defined]

    async def list_installations(self, request: web.Request) -> web.Response:
        app = self._calling_app(request)
        return json_response([self.installation_json(i) for i in self.installations.values() if i.app_id == app.app_id])

    async def repo_installation(self, request: web.Request) -> web.Response:
        from sandbox.emulators.github_emulator import ApiError

        app = self._calling_app(request)
        key = f"{request.match_info['owner']}/{request.match_info['repo']}".lower()
        for installation in self.installations.values():
            if installation.app_id == app.app_id and key in installation.repos and key in self.repos:
                return json_response(self.installation_json(installation))
        raise ApiError(404, "Not Found")

    async def create_installation_token(self, request: web.Request) -> web.Response:
        from sandbox.emulators.github_emulator import ApiError, iso

        app = self._calling_app(request)
        installation = self.installations.get(int(request.match_info["id"]))
        if installation is None or installation.app_id != app.app_id:
            raise ApiError(404, "Not Found")
        from sandbox.emulators.github_emulator import Token

        token = Token("ghs_" + secrets.token_urlsafe(27).replace("-", "A").replace("_", "b")[:36],
                      installation.account, ["repo"], installation_id=installation.id,
                      expires_at=time.time() + app.token_ttl_s)
        self.tokens[token.value] = token
        return json_response({"token": token.value, "expires_at": iso(token.expires_at),
                              "permissions": {"contents": "write", "metadata": "read", "pull_requests": "write"},
                              "repository_selection": "selected"}, status=201)

    def installation_of(self, token: Any) -> AppInstallation | None:
        installation_id = getattr(token, "installation_id", None)
        return self.installations.get(installation_id) if installation_id else None

    async def installation_repositories(self, request: web.Request) -> web.Response:
        from sandbox.emulators.github_emulator import ApiError

        user, token = self._auth(request)  # type: ignore[attr-defined]
        installation = self.installation_of(token)
        if installation is None:
            raise ApiError(403, "You must authenticate with an installation access token in order to list "
                                "repositories for an installation.")
        repos = [self.repos[k] for k in sorted(installation.repos) if k in self.repos]
        return json_response({"total_count": len(repos), "repositories": [self.repo_json(r, user) for r in repos]})  # type: ignore[attr-defined]

    async def collaborator_permission(self, request: web.Request) -> web.Response:
        repo, _, _ = self._repo(request)  # type: ignore[attr-defined]
        login = request.match_info["login"]
        user = self.users.get(login.lower())
        permission = "admin" if user is not None and user.login.lower() == repo.owner.lower() else "none"
        return json_response({"permission": permission, "role_name": permission,
                              "user": {"login": user.login if user else login}})

    # --- control ---------------------------------------------------------------------------------------
    async def _control_register_app(self, request: web.Request) -> web.Response:
        body = await request.json()
        app = GithubApp(str(body["app_id"]), str(body["slug"]), str(body["public_key"]),
                        int(body.get("token_ttl_s") or 3600))
        self.github_apps[app.app_id] = app
        return json_response({"app_id": app.app_id, "slug": app.slug, "token_ttl_s": app.token_ttl_s})

    async def _control_install(self, request: web.Request) -> web.Response:
        app_id = request.match_info["app_id"]
        if app_id not in self.github_apps:
            return json_response({"error": "unknown app"}, status=404)
        body = await request.json()
        installation = AppInstallation(next(self._installation_ids), app_id, str(body["account"]),
                                       {str(r).lower() for r in body.get("repos") or []})
        self.installations[installation.id] = installation
        return json_response({"id": installation.id})

    async def _control_remove_installation(self, request: web.Request) -> web.Response:
        installation = self.installations.get(int(request.match_info["id"]))
        if installation is None:
            return json_response({"error": "unknown installation"}, status=404)
        body = await request.json() if request.can_read_body else {}
        if body.get("repo"):
            installation.repos.discard(str(body["repo"]).lower())
        else:
            del self.installations[installation.id]
            for token in self.tokens.values():
                if getattr(token, "installation_id", None) == installation.id:
                    token.revoked = True
        return json_response({"ok": True})

    async def page_install_app(self, request: web.Request) -> web.Response:
        import html

        slug = html.escape(request.match_info["slug"])
        return html_page(f"Install {slug}", f"<div class=card><h1>Install {slug}</h1><p class=muted>Choose the "
                         "repositories this app may reach (sandbox: use <code>POST /_emulator/apps/{app_id}/"
                         "installations</code>).</p></div>")


def token_usable(token: Any) -> bool:
    """An installation token past its `expires_at` answers 401, as on GitHub."""
    expires_at = getattr(token, "expires_at", None)
    return expires_at is None or time.time() < expires_at


def installation_allows(emulator: Any, token: Any, repo_key: str) -> bool | None:
    """None for an ordinary token; for an installation token, whether the repository is in it."""
    installation = emulator.installation_of(token)
    if getattr(token, "installation_id", None) is None:
        return None
    return installation is not None and repo_key in installation.repos


__all__ = ["AppRoutes", "bearer_token", "installation_allows", "token_usable"]
