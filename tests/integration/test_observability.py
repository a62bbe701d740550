"""Request ids, one JSON log line per request without secrets, /metrics and its guard, the metric
objects other modules rely on, and /readyz while draining."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest
from flask import Response
from prometheus_client import REGISTRY

from app import create_app, logs
from app.errors import InsufficientCredits, UpstreamError
from app.runtime import lifecycle
from app.services import credits
from tests.conftest import TEST_ENCRYPTION_KEY, build_config, sign_in


@pytest.fixture
def log_lines():
    """Every line the app logs during the test, as the production JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)

    def read() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    read.raw = stream.getvalue
    yield read
    root.removeHandler(handler)


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_sane_request_id_is_kept_and_returned(client, log_lines):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a9c21-0001"})
    assert response.headers["X-Request-ID"] == "lb-7f3a9c21-0001"
    requests_logged = [line for line in log_lines() if line.get("event") == "request"]
    assert requests_logged[-1]["request_id"] == "lb-7f3a9c21-0001"
    assert requests_logged[-1]["path"] == "/healthz" and requests_logged[-1]["status"] == 200


@pytest.mark.parametrize("offered", [None, "short", "with space and tab\t0001", "x" * 200, "<script>12345678"])
def test_a_missing_or_unsafe_request_id_is_replaced(client, offered):
    headers = {"X-Request-ID": offered} if offered else {}
    returned = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    assert returned != offered and len(returned) == 32 and returned.isalnum()


def test_each_request_logs_one_line_with_its_own_id(client, log_lines):
    first = client.get("/").headers["X-Request-ID"]
    second = client.get("/no/such/page").headers["X-Request-ID"]
    events = [line for line in log_lines() if line.get("event") == "request"]
    assert [(e["request_id"], e["status"]) for e in events] == [(first, 200), (second, 404)]


def test_tokens_and_keys_never_reach_the_logs(app, client, log_lines):
    token = "sorya_" + "T0kenValue" * 4
    client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    client.get(f"/healthz?access_token=gho_{'a' * 36}&code=oauthcode123")
    client.post("/api/projects", json={"name": "x"}, headers={"Authorization": "Bearer sk-live-leak-me-please"})
    with app.app_context():
        logging.getLogger("app.services.example").warning(
            "provider said %s with key %s and webhook secret %s",
            {"Authorization": f"Bearer {token}"}, app.config["SECRET_KEY"], TEST_ENCRYPTION_KEY,
        )
    output = log_lines.raw()
    assert output  # the requests were logged
    for secret in (token, "gho_" + "a" * 36, "oauthcode123", "sk-live-leak-me-please", app.config["SECRET_KEY"],
                   TEST_ENCRYPTION_KEY):
        assert secret not in output


def test_metrics_from_loopback_and_hidden_from_the_world(client):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert 'sorya_http_request_duration_seconds_count{endpoint="pages.healthz",method="GET",status="200"}' in (
        response.get_data(as_text=True)
    )
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 404
    assert client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.4"}).status_code == 404


def test_metrics_token_is_required_when_set(app_config, tmp_path):
    guarded = create_app(build_config(str(tmp_path), DATABASE_URL=app_config.DATABASE_URL,
                                      METRICS_TOKEN="metrics-token-0123456789"))
    client = guarded.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    remote = {"REMOTE_ADDR": "198.51.100.4"}
    ok = client.get("/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"}, environ_base=remote)
    assert ok.status_code == 200 and b"sorya_active_streams" in ok.data


def test_request_latency_is_observed_per_endpoint(client):
    labels = {"endpoint": "pages.readyz", "method": "GET", "status": "200"}
    before = sample("sorya_http_request_duration_seconds_count", **labels)
    client.get("/readyz")
    client.get("/readyz")
    assert sample("sorya_http_request_duration_seconds_count", **labels) == before + 2


def test_committed_ledger_entries_are_counted_once(app, db_session, make_user):
    user = make_user("metered")
    granted = {"reason": "admin_grant", "direction": "granted"}
    charged = {"reason": "chat", "direction": "charged"}
    before_granted, before_charged = sample("sorya_credits_total", **granted), sample("sorya_credits_total", **charged)
    credits.post_ledger_entry(db_session, user_id=user.id, delta=500, reason="admin_grant", idempotency_key="g-1")
    credits.post_ledger_entry(db_session, user_id=user.id, delta=500, reason="admin_grant", idempotency_key="g-1")
    credits.post_ledger_entry(db_session, user_id=user.id, delta=-120, reason="chat", idempotency_key="c-1")
    with pytest.raises(InsufficientCredits):
        credits.post_ledger_entry(db_session, user_id=user.id, delta=-10_000, reason="chat", idempotency_key="c-2")
    assert sample("sorya_credits_total", **granted) == before_granted + 500
    assert sample("sorya_credits_total", **charged) == before_charged + 120


def test_a_rolled_back_ledger_entry_is_not_counted(app, db_session, make_user):
    from app.models import LedgerEntry

    user = make_user("rolled-back")
    labels = {"reason": "refund", "direction": "granted"}
    before = sample("sorya_credits_total", **labels)
    db_session.add(LedgerEntry(user_id=user.id, delta=70, reason="refund", idempotency_key="rb-1", balance_after=70))
    db_session.flush()
    db_session.rollback()
    db_session.commit()
    assert sample("sorya_credits_total", **labels) == before


def test_provider_errors_are_counted_once_by_the_adapter_that_saw_them():
    from app.providers.github.errors import GithubUnavailable
    from app.providers.openai_client import OpenAIFailure

    before = {p: sample("sorya_provider_errors_total", provider=p) for p in ("GitHub", "OpenAI")}
    GithubUnavailable("GitHub did not answer in time.")
    OpenAIFailure("timeout", "OpenAI did not answer in time.")
    # A route rebuilding the error of a stored push or reply reports it again: not a new failure.
    UpstreamError("GitHub", "The push failed.")
    assert sample("sorya_provider_errors_total", provider="GitHub") == before["GitHub"] + 1
    assert sample("sorya_provider_errors_total", provider="OpenAI") == before["OpenAI"] + 1


def test_open_event_streams_are_counted_until_closed(app_config, tmp_path):
    streaming = create_app(build_config(str(tmp_path), DATABASE_URL=app_config.DATABASE_URL))
    release = threading.Event()

    def events():
        yield "event: start\ndata: {}\n\n"
        release.wait(5)
        yield "event: done\ndata: {}\n\n"

    streaming.add_url_rule("/stream", "stream", lambda: Response(events(), mimetype="text/event-stream"))
    before = sample("sorya_active_streams")
    response = streaming.test_client().get("/stream", buffered=False)
    chunks = response.iter_encoded()
    assert next(chunks).startswith(b"event: start")
    assert sample("sorya_active_streams") == before + 1
    release.set()
    list(chunks)
    response.close()
    assert sample("sorya_active_streams") == before


def test_readyz_turns_503_while_draining(client, monkeypatch):
    draining = threading.Event()
    draining.set()
    monkeypatch.setattr(lifecycle, "_draining", draining)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["process"] == "draining"


def test_the_user_id_is_logged_when_the_request_loaded_the_user(client, make_user, log_lines):
    user = make_user("logged", balance=10)
    sign_in(client, user)
    client.get("/")  # the layout reads current_user
    event = [line for line in log_lines() if line.get("event") == "request"][-1]
    assert event["user_id"] == user.id
