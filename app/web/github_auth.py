"""GitHub for the web layer: the OAuth web flow on Authlib's Flask integration (it needs the request and
the session), and the identity calls with this app's settings. Routes use this module; the rules and
the HTTP live in `app/providers/github/`.

Services see small typed results (`GithubGrant`, `GithubIdentity`) and domain errors:
- `SignInRefused` (400) when the OAuth flow itself says no: consent denied, a state that does not match,
  a bad or reused code;
- `GithubTokenRevoked` (an `UpstreamError`) when GitHub answers 401 to a stored token: the caller marks
  the account (`accounts.mark_github_token_revoked`) so the account page offers to reconnect;
- `UpstreamError("GitHub", ...)` when GitHub is unreachable, times out or answers 5xx.
"""

from __future__ import annotations

import logging
import time

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.base_client.errors import MismatchingStateError
from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from flask import Response, current_app, redirect, request, session

from app import runtime
from app.errors import UpstreamError
from app.metrics import count_provider_error
from app.providers.github import (
    FLOW_REPOSITORIES,
    FLOW_SIGN_IN,
    OAUTH_CLIENT_NAME,
    OAUTH_STATE_TTL_S,
    PROVIDER,
    SIGN_IN_SCOPES,
    GithubGrant,
    GithubIdentity,
    GithubTokenRevoked,
    SignInFlow,
    SignInRefused,
    api_url_for,
    grant_from_token,
    grants_repositories,
    oauth_base_url,
    refusal_for,
    requested_scopes,
)
from app.providers.github import check_token as _check_token
from app.providers.github import fetch_identity as _fetch_identity
from app.providers.github.oauth import CONNECT_TIMEOUT_S, READ_TIMEOUT_S

log = logging.getLogger(__name__)

__all__ = ["FLOW_REPOSITORIES", "FLOW_SIGN_IN", "GithubGrant", "GithubIdentity", "GithubTokenRevoked", "SignInFlow", "SignInRefused", "check_token",
           "fetch_identity", "finish_sign_in", "grants_repositories", "oauth_client", "requested_scopes", "start_sign_in"]


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
            api_base_url=api_url_for(settings.GITHUB_URL) + "/",
            client_kwargs={
                # Sign-in asks who the person is, nothing more; repositories come in a second consent
                # (`start_sign_in(..., scopes=requested_scopes(...))`) when they first need them.
                "scope": " ".join(SIGN_IN_SCOPES),
                "token_endpoint_auth_method": "client_secret_post",
                "default_timeout": (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            },
        )
        current_app.extensions["sorya.github_oauth"] = client
    return client


def start_sign_in(redirect_uri: str, flow: SignInFlow, *, scopes: tuple[str, ...] | None = None) -> Response:
    """Redirect to GitHub's consent page, binding a random `state` (and `flow`) to the session.

    Each started sign-in keeps its own state, so two tabs signing in at once both finish. `scopes`
    replaces the sign-in scopes (the second consent, for repositories).
    """
    client = oauth_client()
    extra = {"scope": " ".join(scopes)} if scopes else {}
    authorization = client.create_authorization_url(redirect_uri, **extra)
    client.save_authorize_data(
        redirect_uri=redirect_uri,
        state=authorization["state"],
        next_path=flow.next_path,
        remember=flow.remember,
        purpose=flow.purpose,
        started_at=time.time(),
    )
    return redirect(authorization["url"])


def finish_sign_in() -> tuple[GithubGrant, SignInFlow]:
    """Check the returning request's `state` and exchange its code for a token (one attempt only).

    Raises `SignInRefused` (consent denied, unknown or expired state, bad or reused code) or
    `UpstreamError` (GitHub unreachable, 5xx, an answer that is not OAuth).
    """
    client = oauth_client()
    flow = _pending_flow(client)
    try:
        token = client.authorize_access_token()
    except MismatchingStateError as exc:
        raise SignInRefused("state", "This sign-in does not match one your browser started. Please sign in again.") from exc
    except OAuthError as exc:
        raise refusal_for(exc.error) from exc
    except requests.RequestException as exc:
        log.warning("github: token exchange failed: %s", type(exc).__name__)
        count_provider_error(PROVIDER)
        raise UpstreamError(
            PROVIDER, "GitHub could not be reached to finish signing in. Nothing was created; please try again.",
            retryable=True,
        ) from exc
    except ValueError as exc:  # a non-JSON answer, e.g. a proxy's error page
        log.warning("github: token exchange answered something other than JSON")
        count_provider_error(PROVIDER)
        raise UpstreamError(
            PROVIDER, "GitHub answered the sign-in with an error. Nothing was created; please try again.",
            retryable=True,
        ) from exc
    return grant_from_token(token), flow


def _pending_flow(client: FlaskOAuth2App) -> SignInFlow:
    """The sign-in this callback finishes, from its `state`; `SignInRefused` when there is none (any more)."""
    state = request.args.get("state") or ""
    pending = client.framework.get_state_data(session, state) if state else None
    error = request.args.get("error")
    if error:
        refusal = refusal_for(error)
        if pending is not None:
            client.framework.clear_state_data(session, state)
            refusal.next_path = pending.get("next_path")
            refusal.purpose = pending.get("purpose")
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
    return SignInFlow(next_path=pending.get("next_path"), remember=bool(pending.get("remember")),
                      purpose=str(pending.get("purpose") or FLOW_SIGN_IN))


def fetch_identity(access_token: str) -> GithubIdentity:
    """The token's GitHub user at this app's `GITHUB_URL` (see `providers.github.fetch_identity`)."""
    return _fetch_identity(access_token, api_url=api_url_for(runtime.settings().GITHUB_URL))


def check_token(access_token: str) -> tuple[str, ...]:
    """Whether the token still works, at this app's `GITHUB_URL` (see `providers.github.check_token`)."""
    return _check_token(access_token, api_url=api_url_for(runtime.settings().GITHUB_URL))
