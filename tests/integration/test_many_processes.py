"""Two gunicorn instances with the production config (one gevent, one gthread), on different ports,
sharing MariaDB and Redis: what one process knows, the other knows too.

Nothing sits between them and the tests: each request picks its process explicitly.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.servers import Gunicorn, app_environment

RATE_LIMIT = 6


@pytest.fixture(scope="module")
def production_env(app_config, tmp_path_factory):
    overrides = {
        "API_RATE_LIMIT": f"{RATE_LIMIT} per minute",
        "WEB_CONCURRENCY": "1",
        "SHUTDOWN_GRACE_S": "3",
    }
    if not app_config.providers_configured:
        # A provider key makes the process production-like: it refuses to start without its secrets.
        overrides["OPENAI_API_KEY"] = "sk-unused-by-these-tests"
    return app_environment(app_config, **overrides), tmp_path_factory


@pytest.fixture(scope="module")
def two_servers(app, production_env):
    env, tmp = production_env
    first = Gunicorn(env, GUNICORN_WORKER_CLASS="gevent", PROMETHEUS_MULTIPROC_DIR=str(tmp.mktemp("prom-a")))
    second = Gunicorn(env, GUNICORN_WORKER_CLASS="gthread", PROMETHEUS_MULTIPROC_DIR=str(tmp.mktemp("prom-b")))
    with first, second:
        yield first, second


def session_cookie_for(app, user) -> str:
    from flask import session as flask_session

    with app.test_request_context():
        flask_session["_user_id"] = str(user.id)
        flask_session["_fresh"] = True
        return app.session_interface.get_signing_serializer(app).dumps(dict(flask_session))


def test_both_processes_are_production_configured(two_servers):
    for server in two_servers:
        ready = requests.get(f"{server.url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}
        assert "frame-ancestors 'none'" in ready.headers["Content-Security-Policy"]
    logs = two_servers[0].output()
    assert '"worker_class"' not in logs  # sanity: the log is ours, JSON lines
    assert any(json.loads(line).get("event") == "request" for line in logs.splitlines() if line.startswith("{"))


def test_a_session_from_one_process_is_valid_on_the_other(app, two_servers, make_user):
    first, second = two_servers
    if "api.me" in app.view_functions:
        user = make_user("shared-session", balance=10)
        cookie = {"session": session_cookie_for(app, user)}
        for server in two_servers:
            me = requests.get(f"{server.url}/api/me", cookies=cookie, timeout=5)
            assert me.status_code == 200, me.text
            assert me.json()["login"] == "shared-session"
    # The CSRF token lives in the signed session: a token issued by one process is accepted by the other.
    browser = requests.Session()
    page = browser.get(f"{first.url}/", timeout=5).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    accepted = browser.post(f"{second.url}/api/no-such-route", json={}, headers={"X-CSRFToken": token}, timeout=5)
    assert accepted.status_code == 404, accepted.text
    refused = browser.post(f"{second.url}/api/no-such-route", json={}, headers={"X-CSRFToken": "forged"}, timeout=5)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"


def test_the_api_rate_limit_is_shared_by_both_processes(two_servers):
    first, second = two_servers
    statuses = []
    for attempt in range(RATE_LIMIT + 4):
        server = (first, second)[attempt % 2]
        response = requests.get(f"{server.url}/api/openapi.json", timeout=5)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "rate_limited"
            assert int(response.headers["Retry-After"]) > 0
    # One budget across both: each process alone would have allowed all ten.
    assert statuses == [200] * RATE_LIMIT + [429] * 4


def test_metrics_are_summed_over_the_workers_of_a_process(two_servers):
    for server in two_servers:
        for _ in range(3):
            requests.get(f"{server.url}/healthz", timeout=5)
        text = requests.get(f"{server.url}/metrics", timeout=5).text
        match = re.search(
            r'sorya_http_request_duration_seconds_count\{endpoint="pages.healthz",method="GET",status="200"\} (\S+)',
            text,
        )
        assert match and float(match.group(1)) >= 3, text[:2000]
        # From behind a proxy (X-Forwarded-For) /metrics is not served without METRICS_TOKEN.
        hidden = requests.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=5)
        assert hidden.status_code == 404


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_sigterm_drains_and_runs_the_shutdown_hooks(app, production_env, worker_class):
    env, _ = production_env
    server = Gunicorn(env, GUNICORN_WORKER_CLASS=worker_class).start()
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
    assert server.stop() == 0
    events = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    messages = [event["message"] for event in events]
    assert any(message.startswith("shutdown: draining") for message in messages), messages
    assert not [event for event in events if event["level"] in ("error", "critical")], events
