"""Two gunicorn instances with the production config (one gevent, one gthread), on different ports,
sharing MariaDB and Redis: what one process knows, the other knows too.

Nothing sits between them and the tests: each request picks its process explicitly.
"""

from __future__ import annotations

import json
import re
import signal

import pytest
import requests

from tests.conftest import session_cookie_id
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


def session_cookie_for(app, user, *, with_csrf: bool = False):
    """A signed session cookie for `user`, as a finished sign-in leaves it (and its CSRF token)."""
    from flask import session as flask_session
    from flask_wtf.csrf import generate_csrf

    cookie_id = session_cookie_id(app, user.id)
    with app.test_request_context():
        flask_session["_user_id"] = cookie_id
        flask_session["_fresh"] = True
        csrf = generate_csrf()
        cookie = app.session_interface.get_signing_serializer(app).dumps(dict(flask_session))
    return (cookie, csrf) if with_csrf else cookie


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
    user = make_user("shared-session", balance=10)
    cookie = {"session": session_cookie_for(app, user)}
    for server in two_servers:
        me = requests.get(f"{server.url}/api/me", cookies=cookie, timeout=5)
        assert me.status_code == 200, me.text
        assert me.json()["login"] == "shared-session"
    # Without the cookie neither process knows who this is: the 200s above came from the session.
    assert requests.get(f"{second.url}/api/me", timeout=5).status_code == 401
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


# -- chat streams across processes ------------------------------------------------------------------

class EventReader:
    """Server-sent events from one streaming `requests` response, read in as many calls as needed
    (one line iterator for the whole response: a second `iter_lines()` would lose what the first buffered)."""

    def __init__(self, response) -> None:
        self.lines = response.iter_lines(decode_unicode=True)
        self.ended = False

    def read(self, *, limit: int | None = None) -> list[dict]:
        """Events until `limit` of them, or until `done`/`error`, or the end of the response."""
        events, current = [], {}
        for raw in self.lines:
            line = (raw or "").rstrip("\r")
            if not line:
                # A block without data (`retry: 1500`, a keep-alive) dispatches no event (the SSE spec).
                if "data" in current:
                    current["data"] = json.loads(current["data"])
                    events.append(current)
                    if current.get("event") in ("done", "error"):
                        self.ended = True
                        return events
                    if limit and len(events) >= limit:
                        return events
                current = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value
        self.ended = True
        return events


def read_events(response, *, limit: int | None = None) -> list[dict]:
    return EventReader(response).read(limit=limit)


def signed_in_browser(app, user, server) -> tuple[requests.Session, str]:
    cookie, csrf = session_cookie_for(app, user, with_csrf=True)
    browser = requests.Session()
    browser.cookies.set("session", cookie, domain="127.0.0.1", path="/")
    return browser, csrf


def test_a_chat_stream_started_on_one_process_is_resumed_on_the_other(app, two_servers, make_user, openai_emulator):
    first, second = two_servers
    user = make_user("streamer", balance=100_000)
    words = [f"word{n} " for n in range(40)]
    openai_emulator.control.script_reply(chunks=words, chunk_delay_ms=40)
    browser, csrf = signed_in_browser(app, user, first)

    with browser.post(f"{first.url}/api/chat", json={"message": "Write forty words."}, stream=True, timeout=30,
                      headers={"Accept": "text/event-stream", "X-CSRFToken": csrf}) as started:
        assert started.status_code == 200, started.text
        seen = read_events(started, limit=4)  # start and a few deltas, then the connection drops
    assert seen[0]["event"] == "start"
    message_id = seen[0]["data"]["message_id"]
    last_id = seen[-1]["id"]

    with browser.get(f"{second.url}/api/chat/{message_id}/stream", stream=True, timeout=30,
                     headers={"Accept": "text/event-stream", "Last-Event-ID": last_id}) as resumed:
        assert resumed.status_code == 200
        rest = read_events(resumed)
    assert rest and rest[-1]["event"] == "done", rest[-3:]
    ids = [int(event["id"]) for event in seen + rest]
    assert ids == sorted(ids) and len(ids) == len(set(ids))  # nothing repeated, nothing out of order
    text = "".join(event["data"]["text"] for event in seen + rest if event["event"] == "delta")
    assert text == "".join(words)

    done = rest[-1]["data"]
    assert done["cost"] > 0 and done["balance"] == 100_000 - done["cost"]
    from app.extensions import db
    from app.models import CreditBalance, LedgerEntry

    with app.app_context():
        stored = db.session.get(CreditBalance, user.id)
        entries = db.session.query(LedgerEntry).filter_by(user_id=user.id).all()
        assert (stored.balance, stored.held) == (done["balance"], 0)
        assert sum(entry.delta for entry in entries) == stored.balance  # charged exactly once
        db.session.remove()
    # One ledger: both processes report the balance the charge left.
    for server in two_servers:
        balance = browser.get(f"{server.url}/api/credits", timeout=5).json()
        assert (balance["balance"], balance["held"]) == (done["balance"], 0)


def test_sigterm_lets_a_running_reply_finish_and_charge(app, production_env, make_user, openai_emulator):
    env, _ = production_env
    server = Gunicorn(env, GUNICORN_WORKER_CLASS="gevent", SHUTDOWN_GRACE_S="10").start()
    user = make_user("draining", balance=100_000)
    words = [f"w{n} " for n in range(20)]
    openai_emulator.control.script_reply(chunks=words, chunk_delay_ms=100)  # about two seconds
    browser, csrf = signed_in_browser(app, user, server)
    try:
        with browser.post(f"{server.url}/api/chat", json={"message": "Twenty words, slowly."}, stream=True,
                          timeout=30, headers={"Accept": "text/event-stream", "X-CSRFToken": csrf}) as response:
            reader = EventReader(response)
            first = reader.read(limit=2)
            server.process.send_signal(signal.SIGTERM)  # a deploy, mid-reply
            rest = reader.read()
    finally:
        assert server.stop() == 0
    assert first[0]["event"] == "start"
    assert rest[-1]["event"] == "done", rest[-3:]
    text = "".join(event["data"]["text"] for event in first + rest if event["event"] == "delta")
    assert text == "".join(words)
    from app.extensions import db
    from app.models import ChatMessage, CreditBalance

    with app.app_context():
        reply = db.session.get(ChatMessage, first[0]["data"]["message_id"])
        assert reply.status == "complete" and reply.cost > 0
        assert db.session.get(CreditBalance, user.id).held == 0
        db.session.remove()


@pytest.mark.parametrize("grace_s, final_status", [("10", "complete"), ("0", "stopped")])
def test_sigterm_ends_a_reply_nobody_is_reading_within_the_grace(
    app, production_env, make_user, openai_emulator, grace_s, final_status
):
    """The reader left; the reply generates on in the worker. The shutdown hooks let it finish within
    SHUTDOWN_GRACE_S, or stop it (charged for what it wrote, hold released) when there is no grace."""
    env, _ = production_env
    server = Gunicorn(env, GUNICORN_WORKER_CLASS="gevent", SHUTDOWN_GRACE_S=grace_s).start()
    user = make_user("left-early", balance=100_000)
    openai_emulator.control.script_reply(chunks=[f"w{n} " for n in range(30)], chunk_delay_ms=100)
    browser, csrf = signed_in_browser(app, user, server)
    try:
        with browser.post(f"{server.url}/api/chat", json={"message": "Thirty words, slowly."}, stream=True,
                          timeout=30, headers={"Accept": "text/event-stream", "X-CSRFToken": csrf}) as response:
            first = EventReader(response).read(limit=3)
        message_id = first[0]["data"]["message_id"]
    finally:
        assert server.stop() == 0
    from app.extensions import db
    from app.models import ChatMessage, CreditBalance, LedgerEntry

    with app.app_context():
        reply = db.session.get(ChatMessage, message_id)
        assert reply.status == final_status, (reply.status, server.output()[-3000:])
        assert reply.cost > 0 and reply.content
        assert db.session.get(CreditBalance, user.id).held == 0
        charged = db.session.query(LedgerEntry).filter_by(user_id=user.id, reason="chat").all()
        assert [-entry.delta for entry in charged] == [reply.cost]
        db.session.remove()
