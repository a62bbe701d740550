"""The skeleton every feature stands on: pages, health, error shapes, CSRF, security headers."""

from datetime import UTC

from tests.conftest import csrf_token_for, sign_in


def test_landing_page_explains_the_product(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Describe it. Sorya writes the code." in page
    assert "5,000 free credits" in page
    assert "Sandbox" not in page  # the test app is configured as production-like


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_checks_database_migrations_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }


def test_readyz_reports_an_unreachable_redis(app, client, monkeypatch):
    import redis as redis_lib

    def refuse(self):
        raise redis_lib.ConnectionError("refused")

    monkeypatch.setattr(redis_lib.Redis, "ping", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"] == "unreachable"
    assert response.json["status"] == "not ready"


def test_api_errors_have_the_contract_shape(client):
    response = client.get("/api/does-not-exist")
    assert response.status_code == 404
    assert response.json == {
        "error": {"code": "not_found", "message": "There is nothing here, or it is not yours."}
    }


def test_page_errors_use_the_site_layout(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Not found" in page and "Back to Sorya" in page and 'class="site-header"' in page


def test_api_post_without_csrf_is_forbidden(signed_in_client):
    response = signed_in_client.post("/api/anything", json={})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert "CSRF" in response.json["error"]["message"]


def test_api_post_with_csrf_passes_the_guard(signed_in_client):
    token = csrf_token_for(signed_in_client)
    response = signed_in_client.post("/api/anything", json={}, headers={"X-CSRFToken": token})
    assert response.status_code == 404  # past CSRF, on to routing


def test_security_headers_on_pages_and_api(client):
    for path in ("/", "/healthz", "/api/nothing", "/no-page"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "Strict-Transport-Security" not in headers  # PUBLIC_URL is http in tests


def test_session_cookie_flags(app):
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_header_shows_balance_for_a_signed_in_user(client, make_user):
    user = make_user("mona", balance=1234)
    sign_in(client, user)
    page = client.get("/").get_data(as_text=True)
    assert 'id="credit-counter"' in page and "1,234" in page


def test_disabled_user_session_is_ignored(client, make_user):
    from datetime import datetime

    user = make_user("gone", balance=10, disabled_at=datetime.now(UTC))
    sign_in(client, user)
    page = client.get("/").get_data(as_text=True)
    assert 'id="credit-counter"' not in page


def test_static_vendor_assets_are_served_locally(client):
    page = client.get("/").get_data(as_text=True)
    assert "/static/vendor/htmx-2.0.11/htmx.min.js" in page
    assert "http://" not in page.split("<body")[0].replace("http://localhost", "")
    assert client.get("/static/vendor/htmx-2.0.11/htmx.min.js").status_code == 200
    assert client.get("/static/vendor/pico-2.1.1/pico.min.css").status_code == 200
