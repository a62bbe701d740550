"""The GitHub adapter: the OAuth web flow (Authlib) and the REST API, against `GITHUB_URL`.

github.com keeps OAuth at `https://github.com/login/oauth/*` and the API at `https://api.github.com`;
any other `GITHUB_URL` (GitHub Enterprise Server, the sandbox) serves OAuth at `{GITHUB_URL}/login/oauth/*`
and the API at `{GITHUB_URL}/api/v3` (`Config.github_api_url`).

Services see small typed results (`GithubGrant`, `GithubIdentity`) and domain errors:
- `SignInRefused` (400) when the OAuth flow itself says no: consent denied, a state that does not match,
  a bad or reused code;
- `GithubTokenRevoked` (an `UpstreamError`) when GitHub answers 401 to a stored token: the caller marks
  the account (`accounts.mark_github_token_revoked`) so the account page offers to reconnect;
- `UpstreamError("GitHub", ...)` when GitHub is unreachable, times out or answers 5xx.
Access tokens never reach a log line or an error message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.base_client.errors import MismatchingStateError
from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from authlib.integrations.requests_client import OAuth2Session
from flask import Response, current_app, redirect, request, session
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app import runtime
from app.providers.github_errors import GithubTokenRevoked
from app.services.errors import InvalidRequest, UpstreamError
from config import GITHUB_DOTCOM

log = logging.getLogger(__name__)

PROVIDER = "GitHub"
OAUTH_CLIENT_NAME = "github"
# Scopes to sign in; the repository scope is asked in the same consent so publishing needs no second one.
SIGN_IN_SCOPES = ("read:user", "user:email")
REPO_SCOPE_PRIVATE = "repo"
REPO_SCOPE_PUBLIC_ONLY = "public_repo"
# GitHub's authorization codes live 10 minutes; a sign-in started longer ago than that cannot finish.
OAUTH_STATE_TTL_S = 10 * 60
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 15
# Idempotent reads are retried on a dropped connection or a 5xx; the code exchange never is (one use).
GET_RETRIES = 2
RETRY_BACKOFF_S = 0.2
API_VERSION = "2022-11-28"


# -- typed results and errors --------------------------------------------------------------------


@dataclass(frozen=True)
class GithubGrant:
    """What the code exchange returned: the access token and the scopes GitHub granted."""

    access_token: str
    scopes: tuple[str, ...]

    def __repr__(self) -> str:  # never print the token, even in a traceback's locals
        return f"GithubGrant(scopes={self.scopes!r})"


@dataclass(frozen=True)
class GithubIdentity:
    """A GitHub user: `id` is stable, `login` can be renamed, `email` is primary and verified or None."""

    id: int
    login: str
    name: str
    email: str | None


class SignInRefused(InvalidRequest):
    """The OAuth flow ended without a token. `reason` is denied, state or code."""

    def __init__(self, reason: str, message: str, *, next_path: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        # Where the person was going, when the refused flow is known: trying again keeps it.
        self.next_path = next_path


# -- configuration -------------------------------------------------------------------------------


def oauth_base_url(github_url: str) -> str:
    """Where `/login/oauth/*` lives: github.com itself, or the Enterprise/sandbox root."""
    return GITHUB_DOTCOM if github_url == GITHUB_DOTCOM else github_url


def requested_scopes(allow_private_repos: bool) -> tuple[str, ...]:
    repo_scope = REPO_SCOPE_PRIVATE if allow_private_repos else REPO_SCOPE_PUBLIC_ONLY
    return (*SIGN_IN_SCOPES, repo_scope)


def parse_scopes(raw: str | None) -> tuple[str, ...]:
    """GitHub lists scopes comma-separated (token answer) or comma-and-space (X-OAuth-Scopes)."""
    return tuple(s for s in (part.strip() for part in (raw or "").replace(" ", ",").split(",")) if s)


def oauth_client() -> FlaskOAuth2App:
    """This app's Authlib client for GitHub, registered on first use from configuration.

    Built per Flask app (not on the module-wide `OAuth` registry), because that registry caches one
    client per name for the whole process while tests and the sandbox run apps with different URLs.
    """
    client = current_app.extensions.get("sorya.github_oauth")
    if client is None:
        settings = runtime.settings()
        oauth_base = oauth_base_url(settings.GITHUB_URL)
        framework = FlaskIntegration(OAUTH_CLIENT_NAME)
        framework.expires_in = OAUTH_STATE_TTL_S
        client = FlaskOAuth2App(
            framework,
            OAUTH_CLIENT_NAME,
            client_id=settings.GITHUB_CLIENT_ID,
            client_secret=settings.GITHUB_CLIENT_SECRET,
            authorize_url=f"{oauth_base}/login/oauth/authorize",
            access_token_url=f"{oauth_base}/login/oauth/access_token",
            api_base_url=settings.github_api_url + "/",
            client_kwargs={
                "scope": " ".join(requested_scopes(settings.GITHUB_ALLOW_PRIVATE_REPOS)),
                "token_endpoint_auth_method": "client_secret_post",
                "default_timeout": (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            },
        )
        current_app.extensions["sorya.github_oauth"] = client
    return client


# -- the OAuth web flow --------------------------------------------------------------------------


@dataclass(frozen=True)
class SignInFlow:
    """What the person asked for when they started signing in, kept with the flow's `state`."""

    next_path: str | None
    remember: bool


def start_sign_in(redirect_uri: str, flow: SignInFlow) -> Response:
    """Redirect to GitHub's consent page, binding a random `state` (and `flow`) to the session.

    Each started sign-in keeps its own state, so two tabs signing in at once both finish.
    """
    client = oauth_client()
    authorization = client.create_authorization_url(redirect_uri)
    client.save_authorize_data(
        redirect_uri=redirect_uri,
        state=authorization["state"],
        next_path=flow.next_path,
        remember=flow.remember,
        started_at=time.time(),
    )
    return redirect(authorization["url"])


def finish_sign_in() -> tuple[GithubGrant, SignInFlow]:
    """Check the returning request's `state` and exchange its code for a token (one attempt only).

    Raises `SignInRefused` (consent denied, unknown or expired state, bad or reused code) or
    `UpstreamError` (GitHub unreachable, 5xx, an answer that is not OAuth).
    """
    client = oauth_client()
    state = request.args.get("state") or ""
    pending = client.framework.get_state_data(session, state) if state else None
    error = request.args.get("error")
    if error:
        refusal = _refusal_for(error)
        if pending is not None:
            client.framework.clear_state_data(session, state)
            refusal.next_path = pending.get("next_path")
        raise refusal
    if pending is None:
        raise SignInRefused(
            "state",
            "This sign-in does not match one your browser started (it may have finished already, or started "
            "in another browser). Nothing was created; please sign in again.",
        )
    if time.time() - float(pending.get("started_at") or 0) > OAUTH_STATE_TTL_S:
        client.framework.clear_state_data(session, state)
        raise SignInRefused(
            "state",
            f"This sign-in was started more than {OAUTH_STATE_TTL_S // 60} minutes ago and has expired. "
            "Nothing was created; please sign in again.",
        )
    flow = SignInFlow(next_path=pending.get("next_path"), remember=bool(pending.get("remember")))
    try:
        token = client.authorize_access_token()
    except MismatchingStateError as exc:
        raise SignInRefused("state", "This sign-in does not match one your browser started. Please sign in again.") from exc
    except OAuthError as exc:
        raise _refusal_for(exc.error) from exc
    except requests.RequestException as exc:
        log.warning("github: token exchange failed: %s", type(exc).__name__)
        raise UpstreamError(
            PROVIDER, "GitHub could not be reached to finish signing in. Nothing was created; please try again.",
            retryable=True,
        ) from exc
    except ValueError as exc:  # a non-JSON answer, e.g. a proxy's error page
        log.warning("github: token exchange answered something other than JSON")
        raise UpstreamError(
            PROVIDER, "GitHub answered the sign-in with an error. Nothing was created; please try again.",
            retryable=True,
        ) from exc
    access_token = token.get("access_token")
    if not access_token:
        raise UpstreamError(PROVIDER, "GitHub finished the sign-in without an access token. Please try again.")
    return GithubGrant(access_token=access_token, scopes=parse_scopes(token.get("scope"))), flow


def _refusal_for(error: str | None) -> SignInRefused:
    if error == "access_denied":
        return SignInRefused(
            "denied", "You cancelled the authorization on GitHub, so you are not signed in. Nothing was created."
        )
    if error in ("bad_verification_code", "invalid_grant"):
        return SignInRefused(
            "code",
            "GitHub did not accept this sign-in code: it was already used or has expired. "
            "Nothing was created; please sign in again.",
        )
    log.warning("github: OAuth error %s", error)
    return SignInRefused(
        "code", "GitHub refused the sign-in. Nothing was created; please try again."
    )


# -- the REST API --------------------------------------------------------------------------------


class GithubApi:
    """A GitHub REST API client for one access token: base URL, timeouts, retries and error mapping.

    `request_json` answers the decoded JSON body or raises `GithubTokenRevoked` (401) or
    `UpstreamError`; 4xx answers other than 401 raise `GithubRequestFailed` carrying the status, so
    callers can decide (a 404 may mean "no such repository" or "no scope to see it").
    """

    def __init__(self, access_token: str, *, api_url: str, retries: int = GET_RETRIES,
                 read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = (CONNECT_TIMEOUT_S, read_timeout_s)
        self.session = OAuth2Session(token={"access_token": access_token, "token_type": "bearer"})
        self.session.headers.update({
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "Sorya",
        })
        retry = Retry(
            total=retries, connect=retries, read=retries, status=retries,
            backoff_factor=RETRY_BACKOFF_S, status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> GithubApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One API call; raises for 401, 5xx and network failures, returns any other answer."""
        url = f"{self.api_url}/{path.lstrip('/')}"
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            log.warning("github: %s %s failed: %s", method, path, type(exc).__name__)
            raise UpstreamError(
                PROVIDER, "GitHub could not be reached. Please try again in a moment.", retryable=True
            ) from exc
        if response.status_code == 401:
            raise GithubTokenRevoked()
        if response.status_code >= 500:
            log.warning("github: %s %s answered %s", method, path, response.status_code)
            raise UpstreamError(
                PROVIDER, f"GitHub answered with an error ({response.status_code}). Please try again in a moment.",
                retryable=True,
            )
        return response

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise GithubRequestFailed(response.status_code, _github_message(response))
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamError(PROVIDER, "GitHub answered with something that is not JSON.") from exc

    def scopes(self, response: requests.Response) -> tuple[str, ...]:
        return parse_scopes(response.headers.get("X-OAuth-Scopes"))


class GithubRequestFailed(UpstreamError):
    """GitHub answered a 4xx other than 401; `status` says which."""

    def __init__(self, status: int, github_message: str) -> None:
        super().__init__(PROVIDER, f"GitHub refused the request ({status}): {github_message}")
        self.status = status


def _github_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no details"
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or response.reason or "no details")[:300]


def github_api(access_token: str, **kwargs: Any) -> GithubApi:
    """A client for `access_token` at the configured API base (`GITHUB_URL` per the contract)."""
    return GithubApi(access_token, api_url=runtime.settings().github_api_url, **kwargs)


def fetch_identity(access_token: str) -> GithubIdentity:
    """The token's user and their primary verified email (None when there is none or it is hidden).

    A failure to read the emails (missing scope, a 5xx) leaves the email None rather than failing the
    sign-in: the email is optional, the identity is not.
    """
    with github_api(access_token) as api:
        user = api.request_json("GET", "user")
        try:
            emails = api.request_json("GET", "user/emails")
        except GithubTokenRevoked:
            raise
        except UpstreamError as exc:
            log.info("github: emails unavailable for user %s: %s", user.get("id"), exc.message)
            emails = []
    try:
        github_user_id = int(user["id"])
        login = str(user["login"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(PROVIDER, "GitHub answered without a user id and login.") from exc
    return GithubIdentity(
        id=github_user_id, login=login, name=str(user.get("name") or ""), email=primary_verified_email(emails)
    )


def primary_verified_email(emails: Any) -> str | None:
    if not isinstance(emails, list):
        return None
    for entry in emails:
        if isinstance(entry, dict) and entry.get("primary") and entry.get("verified") and entry.get("email"):
            return str(entry["email"])
    return None


def check_token(access_token: str, *, read_timeout_s: float = 5) -> tuple[str, ...]:
    """Ask GitHub whether the token still works (no retries: a page waits on it).

    Returns the scopes GitHub reports; raises `GithubTokenRevoked` on 401, `UpstreamError` otherwise.
    """
    with github_api(access_token, retries=0, read_timeout_s=read_timeout_s) as api:
        response = api.request("GET", "user")
        if response.status_code >= 400:
            raise GithubRequestFailed(response.status_code, _github_message(response))
        return api.scopes(response)
