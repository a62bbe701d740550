"""Request-wide guards: CSRF for browser sessions, personal API tokens kept to `/api` and to their scope,
security headers, the API rate limit, the proxy hops to trust, and Flask-Login's hooks.

Headers on every response: a strict CSP (`PAGE_CSP`: no inline script or style, never framed),
`X-Content-Type-Options`, `Referrer-Policy`, `X-Frame-Options`, `Cross-Origin-Opener-Policy`,
`Permissions-Policy`, and HSTS when `PUBLIC_URL` is https. One route may opt in to being framed by the
app itself, with a sandboxed CSP: see `framable_preview`.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from flask import Flask, Response, g, redirect, request, url_for
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from app.errors import Forbidden, Unauthenticated
from app.extensions import csrf, db, login_manager
from app.models import User
from app.services import accounts
from app.web.request_limits import apply_route_body_limit

if TYPE_CHECKING:
    from app.services.api_tokens import AuthenticatedToken

# Routes that authenticate their caller another way and must not demand a CSRF token.
CSRF_EXEMPT_PATHS = {"/api/webhooks/stripe"}
MAX_NEXT_CHARS = 2000
# How many times a redirect target is percent-decoded to look for a hidden `//`, `\\` or control character.
MAX_NEXT_DECODINGS = 3
# Control (Cc: C0, DEL, C1), format (Cf: bidi overrides, zero-width) and line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def has_bearer_token() -> bool:
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def has_api_bearer_token() -> bool:
    """A bearer token on an `/api` call: the only place a personal API token counts (CONTRACT.md).

    On pages and their forms the header is ignored for authentication (the request is anonymous, see
    `load_user`) and CSRF applies as to any browser request, so a leaked token can neither mint a new
    token nor delete the account.
    """
    return has_bearer_token() and is_api_request()


def enforce_csrf() -> None:
    """CSRF protects cookie sessions. An `/api` request carrying `Authorization: Bearer` is authenticated
    by that token alone (never by the cookie), and a cross-site form cannot set that header, so it skips."""
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return
    if request.path in CSRF_EXEMPT_PATHS or has_api_bearer_token():
        return
    csrf.protect()


# The app's own pages: scripts, styles and connections from this origin only (no inline code: scripts
# live in static/js, styles in static/css), never framed by anyone.
PAGE_CSP = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-src 'self'",
    "frame-ancestors 'none'",
)
# A preview of generated HTML (see `framable_preview`): framed by the app only, in a sandbox with an
# opaque origin (no cookies, no access to the app's pages or storage), no network access at all, so
# whatever the model wrote can neither read a user's data nor send it anywhere.
# 'self' lets a page load its sibling files (CSS, images, scripts) from the same preview route; the
# opaque origin means those requests carry no cookie.
PREVIEW_CSP = (
    "default-src 'none'",
    "img-src 'self' data:",
    "style-src 'self' 'unsafe-inline'",
    "font-src 'self' data:",
    "media-src 'self' data:",
    "connect-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'self'",
)
# A version served as a site (the preview route, app/web/snapshot_preview.py): its own files, inline code,
# data: and blob: URLs, and with the project's `preview_allow_cdn` (the default) any https: URL, so a page
# that loads a library or a font from a CDN works. Safe for Sorya's data all the same: the page runs in a
# sandbox with an opaque origin (`sandbox allow-scripts`, never allow-same-origin, here and on the
# iframe), so its requests carry no cookie, it reads no storage of Sorya's, and Sorya's API, which sends
# no CORS headers, answers it nothing it could read.
PREVIEW_SITE_CSP = (
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'none'",
    "frame-ancestors 'self'",
)
PREVIEW_SANDBOX = "sandbox"
PREVIEW_SANDBOX_WITH_SCRIPTS = "sandbox allow-scripts"
HSTS_VALUE = "max-age=31536000; includeSubDomains"


def content_security_policy() -> str:
    return "; ".join(PAGE_CSP)


def preview_content_security_policy(*, allow_scripts: bool) -> str:
    directives = list(PREVIEW_CSP)
    if allow_scripts:
        # Inline scripts only: the sandbox still denies same-origin, network, forms and top navigation.
        directives.insert(1, "script-src 'self' 'unsafe-inline'")
    directives.append(PREVIEW_SANDBOX_WITH_SCRIPTS if allow_scripts else PREVIEW_SANDBOX)
    return "; ".join(directives)


def framable_preview(view: Callable[..., Any] | None = None, *, allow_scripts: bool = False):
    """Mark a route as a preview of generated HTML that the app itself may show in an <iframe>.

    Its responses get `frame-ancestors 'self'` (instead of 'none'), `X-Frame-Options: SAMEORIGIN` and
    the sandboxed `PREVIEW_CSP`; every other response stays unframable. Use it on the one route that
    serves a snapshot's HTML:

        @bp.get("/projects/<int:project_id>/preview/<path:path>")
        @framable_preview(allow_scripts=True)
        def preview_file(project_id, path): ...

    and frame it with `<iframe sandbox="allow-scripts" src="...">` (never add allow-same-origin).
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.frame_policy = "preview-scripts" if allow_scripts else "preview"
            return func(*args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def preview_site_content_security_policy(*, allow_cdn: bool) -> str:
    """The CSP of a version's files served as a site (see PREVIEW_SITE_CSP)."""
    sources = "'self' 'unsafe-inline' data: blob:" + (" https:" if allow_cdn else "")
    return "; ".join((f"default-src {sources}", *PREVIEW_SITE_CSP, PREVIEW_SANDBOX_WITH_SCRIPTS))


def add_security_headers(response: Response) -> Response:
    frame_policy = g.get("frame_policy")
    site_cdn = g.get("preview_allow_cdn")
    if frame_policy and site_cdn is not None:
        response.headers["Content-Security-Policy"] = preview_site_content_security_policy(allow_cdn=site_cdn)
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    elif frame_policy:
        response.headers["Content-Security-Policy"] = preview_content_security_policy(
            allow_scripts=frame_policy == "preview-scripts"
        )
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    else:
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
        response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    from app import runtime

    if runtime.settings().public_url_is_https:
        response.headers.setdefault("Strict-Transport-Security", HSTS_VALUE)
    return response


def api_rate_limit() -> str:
    """The per-caller limit on every /api call (API_RATE_LIMIT), read per request."""
    from app import runtime

    return runtime.settings().API_RATE_LIMIT


def api_rate_limit_key() -> str:
    """Per user when the request is authenticated (session or API token), else per address."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"addr:{request.remote_addr}"


def api_rate_limit_exempt() -> bool:
    from app import runtime

    # Stripe retries webhooks on its own schedule; a 429 there only delays money. The webhook is
    # authenticated by its signature, not by a caller we could throttle fairly.
    return not runtime.settings().API_RATE_LIMIT or request.path in CSRF_EXEMPT_PATHS


def trust_proxy_headers(app: Flask, hops: int) -> None:
    """Believe X-Forwarded-For/-Proto/-Host/-Port from `hops` proxies in front (TRUSTED_PROXY_HOPS).

    Only when a proxy is really there: otherwise any client could claim another address (and escape
    its rate limit) or claim https.
    """
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    # A request that carries a bearer token is authenticated by that token alone: a bad token must be
    # a 401 even when the same client also holds a valid session or remember-me cookie. Off `/api` the
    # token counts for nothing, and neither does the cookie beside it: the request is anonymous.
    if has_bearer_token():
        return bearer_user() if is_api_request() else None
    # "<user id>:<session id>": the cookie signs someone in only while its server-side session lives.
    return accounts.user_for_session(db.session, user_id)


@login_manager.request_loader
def load_user_from_request(_request) -> User | None:
    return bearer_user() if has_api_bearer_token() else None


def bearer_user() -> User | None:
    """The active user of the request's `Authorization: Bearer` token, looked up once per request."""
    token = bearer_token()
    return token.user if token is not None else None


def bearer_token() -> AuthenticatedToken | None:
    """The request's authenticated API token or None, looked up once per request. Why a token was refused (unknown, expired, ...) is kept for `unauthorized`."""
    if "bearer_token" not in g:
        from app.services import api_tokens

        _, _, presented = request.headers.get("Authorization", "").partition(" ")
        try:
            g.bearer_token = api_tokens.authenticate(db.session, presented.strip())
        except Unauthenticated as refused:
            g.bearer_token = None
            g.bearer_refusal = refused.message
    return g.bearer_token


def enforce_token_scope() -> None:
    """A `read` token may only read: any other method is 403 before the route runs. A token that does
    not authenticate is left to `login_required` (401), so an expired read token is 401, not 403."""
    if not has_api_bearer_token():
        return
    token = bearer_token()
    if token is not None and not token.may_use_method(request.method):
        raise Forbidden(
            f"This API token is read-only: it may only use GET, not {request.method}. "
            "Create a write token on your account page to make changes."
        )


def safe_next_path(target: str | None) -> str | None:
    """`target` if it is a path on this site (`/projects?x=1`), else None. The one check of every
    redirect target a request names (`next`, a referrer, an htmx page URL).

    Refuses absolute and scheme-relative URLs (`https://evil`, `//evil`), backslashes (browsers read
    `/\\evil` as `//evil`), any control, line-separator or format character (browsers drop tabs and
    newlines, so `/<TAB>/evil` is `//evil`; CR/LF would split the header), and anything not starting with
    a single `/`. The same checks apply to the target percent-decoded, once and again (up to
    `MAX_NEXT_DECODINGS` times), because a proxy or a later redirect may decode it.
    """
    if not target or len(target) > MAX_NEXT_CHARS:
        return None
    decoded = target
    for _ in range(MAX_NEXT_DECODINGS + 1):
        if not _is_plain_site_path(decoded):
            return None
        once_more = unquote(decoded)
        if once_more == decoded:
            return target
        decoded = once_more
    return None  # still encoded after that many rounds: nobody sends that in good faith


def same_site_path(url: str | None) -> str | None:
    """The path (and query) of `url` when it is a page of this site (same host), checked by
    `safe_next_path`; None otherwise. For the page a request came from (a referrer, `HX-Current-URL`)."""
    parts = urlsplit(url or "")
    if parts.netloc != request.host:
        return None
    return safe_next_path(parts.path + (f"?{parts.query}" if parts.query else ""))


def _is_plain_site_path(target: str) -> bool:
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in target):
        return False
    parts = urlsplit(target)
    return not (parts.scheme or parts.netloc)


def default_landing_url() -> str:
    """Where a signed-in person goes when no `next` was asked for: their projects."""
    return url_for("projects.dashboard")


@login_manager.unauthorized_handler
def unauthorized():
    if is_api_request():
        if has_bearer_token():
            from app.services import api_tokens

            raise Unauthenticated(g.get("bearer_refusal") or api_tokens.INVALID_TOKEN_MESSAGE)
        raise Unauthenticated("Sign in, or send a valid API token in the Authorization header.")
    next_path = safe_next_path(request.full_path.rstrip("?") if request.method == "GET" else None)
    target = url_for("auth.login", next=next_path) if next_path else url_for("auth.login")
    return redirect_page(target, htmx_status=401)


def redirect_page(location: str, *, htmx_status: int = 204) -> Response:
    """A redirect to another page. An htmx swap cannot follow one (it would swap that page into a
    fragment), so an htmx request is answered `htmx_status` with `HX-Redirect`: htmx navigates instead."""
    if request.headers.get("HX-Request"):
        response = Response(status=htmx_status)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location)


def register_security(app: Flask) -> None:
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    # First, so no guard reads a body larger than its route accepts (the CSRF check reads form fields).
    app.before_request(apply_route_body_limit)
    app.before_request(enforce_csrf)
    app.before_request(enforce_token_scope)
    app.after_request(add_security_headers)
    trust_proxy_headers(app, app.extensions["sorya.config"].TRUSTED_PROXY_HOPS)

    @app.context_processor
    def layout_context():
        from app import runtime

        balance = None
        if current_user.is_authenticated:
            row = current_user.credit_balance  # loaded with the user (see User.credit_balance)
            balance = row.balance if row else 0
        return {
            "sandbox": runtime.settings().SORYA_SANDBOX,
            "credit_balance": balance,
        }
