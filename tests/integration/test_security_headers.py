"""Security headers on every response the app can give, the framable preview opt-in, HSTS, cookie
flags, trusted proxy hops, and the start-up check of the secrets."""

from __future__ import annotations

import re

import pytest

from app import create_app
from app.web.security import framable_preview
from config import Config, ConfigError
from tests.conftest import build_config, sign_in

SAMPLE_ARGS = {"int": "1", "path": "index.html", "string": "sample", "default": "sample"}


def sample_url(rule) -> str:
    """The rule's URL with a sample value for each argument (ids that exist or not: both must be safe)."""
    url = rule.rule
    for converter, name in re.findall(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", rule.rule):
        pattern = rf"<(?:{converter}(?:\([^)]*\))?:)?{name}>" if converter else rf"<{name}>"
        url = re.sub(pattern, SAMPLE_ARGS.get(converter or "default", "sample"), url)
    return url


def get_routes(app) -> list[str]:
    urls = {sample_url(rule) for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    urls.add("/static/css/site.css")
    return sorted(urls)


def assert_strict_headers(response, url: str) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert response.headers.get("X-Content-Type-Options") == "nosniff", url
    assert response.headers.get("Referrer-Policy") == "strict-origin-when-cross-origin", url
    if "sandbox" in csp:  # the one kind of response allowed to be framed, by the app itself
        assert "frame-ancestors 'self'" in csp and "connect-src 'none'" in csp, url
        assert response.headers.get("X-Frame-Options") == "SAMEORIGIN", url
        return
    assert "frame-ancestors 'none'" in csp, url
    assert response.headers.get("X-Frame-Options") == "DENY", url
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, url
    assert "style-src 'self'" in csp and "object-src 'none'" in csp, url


def test_every_get_route_sends_the_security_headers_signed_out(app, client):
    urls = get_routes(app)
    assert len(urls) >= 5
    for url in urls:
        response = client.get(url)
        response.close()  # a streamed download (ledger CSV) holds its request context until closed
        assert response.status_code < 500, (url, response.status_code)
        assert_strict_headers(response, url)


def test_every_get_route_sends_the_security_headers_signed_in(app, client, make_user):
    sign_in(client, make_user("headers", balance=100))
    for url in get_routes(app):
        response = client.get(url)
        response.close()  # a streamed download (ledger CSV) holds its request context until closed
        assert response.status_code < 500, (url, response.status_code)
        assert_strict_headers(response, url)


def test_errors_and_unsafe_methods_get_them_too(client):
    for response in (client.get("/no/such/page"), client.post("/api/projects", json={}),
                     client.delete("/"), client.get("/api/nothing")):
        assert_strict_headers(response, response.request.path)


def test_no_hsts_over_http(client):
    assert "Strict-Transport-Security" not in client.get("/").headers


@pytest.fixture
def https_app(app_config, tmp_path):
    config = build_config(str(tmp_path), DATABASE_URL=app_config.DATABASE_URL, REDIS_URL=app_config.REDIS_URL,
                          PUBLIC_URL="https://sorya.example.com")
    return create_app(config)


def test_https_public_url_turns_on_hsts_and_secure_cookies(https_app):
    client = https_app.test_client()
    response = client.get("/", base_url="https://sorya.example.com")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie


def test_session_cookie_flags_over_http(client):
    cookie = client.get("/").headers["Set-Cookie"]
    assert cookie.startswith("session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_framable_preview_is_sandboxed_and_framed_only_by_the_app(app_config, tmp_path):
    preview_app = create_app(build_config(str(tmp_path), DATABASE_URL=app_config.DATABASE_URL))
    preview_app.add_url_rule("/preview-static", "preview_static",
                             framable_preview(lambda: "<h1>generated</h1>"))
    preview_app.add_url_rule("/preview-scripts", "preview_scripts",
                             framable_preview(allow_scripts=True)(lambda: "<script>1</script>"))
    client = preview_app.test_client()

    static = client.get("/preview-static").headers
    assert static["X-Frame-Options"] == "SAMEORIGIN"
    csp = static["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in csp and csp.endswith("; sandbox")
    assert "script-src" not in csp and "default-src 'none'" in csp and "connect-src 'none'" in csp

    scripted = client.get("/preview-scripts").headers["Content-Security-Policy"]
    assert "script-src 'unsafe-inline'" in scripted and scripted.endswith("; sandbox allow-scripts")
    assert "allow-same-origin" not in scripted

    # Every other response of the same app stays unframable.
    assert "frame-ancestors 'none'" in client.get("/").headers["Content-Security-Policy"]


def test_production_refuses_to_start_without_secrets_and_says_how_to_make_them(tmp_path):
    config = Config.from_env(env={"SORYA_INSTANCE_DIR": str(tmp_path), "STRIPE_SECRET_KEY": "sk_live_x"})
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    message = str(caught.value)
    assert "SECRET_KEY must be set" in message and "secrets.token_urlsafe(48)" in message
    assert "ENCRYPTION_KEY must be set" in message and "base64.b64encode(os.urandom(32))" in message


def test_production_starts_with_its_secrets(tmp_path, app_config):
    config = Config.from_env(env={
        "SORYA_INSTANCE_DIR": str(tmp_path), "STRIPE_SECRET_KEY": "sk_live_x", "DATABASE_URL": app_config.DATABASE_URL,
        "SECRET_KEY": "s" * 48, "ENCRYPTION_KEY": app_config.ENCRYPTION_KEY,
    })
    assert create_app(config).test_client().get("/healthz").status_code == 200


@pytest.mark.parametrize("hops, expected", [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_forwarded_headers_count_only_with_trusted_proxy_hops(app_config, tmp_path, hops, expected):
    from flask import request

    proxied = create_app(build_config(str(tmp_path), DATABASE_URL=app_config.DATABASE_URL, TRUSTED_PROXY_HOPS=hops))
    proxied.add_url_rule("/whoami", "whoami", lambda: {"addr": request.remote_addr, "scheme": request.scheme})
    seen = proxied.test_client().get(
        "/whoami", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    ).json
    assert seen == {"addr": expected, "scheme": "https" if hops else "http"}
