"""Prometheus metrics: the named objects every module increments, served at `GET /metrics`.

Increment them where the event happens; never label with unbounded values (user ids, paths with ids):

- `HTTP_REQUEST_DURATION` — histogram, labels `endpoint` (Flask endpoint name), `method`, `status`.
  Observed for every request by app/web/observability.py; nothing to do elsewhere. For a streamed
  response it measures the time to the first byte, not the stream's life.
- `ACTIVE_STREAMS` — gauge of `text/event-stream` responses open right now. Tracked by
  app/web/observability.py for every streamed response; nothing to do elsewhere.
- `PROVIDER_ERRORS` — counter, labels `provider` ("OpenAI", "GitHub", "Stripe"). Counted by the
  adapter that saw the failure (`count_provider_error`, in app/providers/ and the OAuth half in
  app/web/github_auth.py), once per failed call: an `UpstreamError` rebuilt later from a stored reply
  or push is not counted again.
- `TOKENS` — counter, labels `model`, `direction` ("in" / "out"). The chat service increments it when a
  reply is settled: `TOKENS.labels(model=m, direction="in").inc(tokens_in)`.
- `CREDITS` — counter, labels `reason` (the ledger reason), `direction` ("charged" / "granted").
  Counted from committed ledger entries by a session hook below: nothing to do elsewhere, and a
  rolled-back entry (an idempotent retry that lost its race) is not counted.
- `JOBS` — counter, labels `job`, `outcome` ("ok" / "failed"), by app/runtime/jobs.py.

Under gunicorn each worker is its own process: set `PROMETHEUS_MULTIPROC_DIR` to an empty directory
writable by the workers (gunicorn.conf.py empties it at start and marks dead workers) and `/metrics`
then sums every worker's values. It must be set in the environment before this module is imported.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.orm import Session

HTTP_REQUEST_DURATION = Histogram(
    "sorya_http_request_duration_seconds",
    "Time from receiving a request to its response headers, by endpoint.",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ACTIVE_STREAMS = Gauge(
    "sorya_active_streams",
    "Server-sent event streams open right now.",
    multiprocess_mode="livesum",
)
PROVIDER_ERRORS = Counter(
    "sorya_provider_errors_total", "Provider calls that failed, by provider.", ["provider"]
)


def count_provider_error(provider: str) -> None:
    """One failed call to `provider` ("OpenAI", "GitHub" or "Stripe")."""
    PROVIDER_ERRORS.labels(provider=provider).inc()


TOKENS = Counter("sorya_tokens_total", "Model tokens metered, by model and direction.", ["model", "direction"])
CREDITS = Counter(
    "sorya_credits_total", "Credits moved on the ledger, by reason and direction.", ["reason", "direction"]
)
JOBS = Counter("sorya_jobs_total", "Background jobs run, by job and outcome.", ["job", "outcome"])


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type: this process's values, or every worker's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# -- credits from committed ledger entries ---------------------------------------------------------

_PENDING_KEY = "sorya.pending_credit_metrics"


@event.listens_for(Session, "after_flush")
def _collect_new_ledger_entries(session: Session, flush_context) -> None:
    from app.models import LedgerEntry

    pending = session.info.setdefault(_PENDING_KEY, [])
    pending.extend((obj.reason, obj.delta) for obj in session.new if isinstance(obj, LedgerEntry))


@event.listens_for(Session, "after_commit")
def _count_committed_credits(session: Session) -> None:
    for reason, delta in session.info.pop(_PENDING_KEY, []):
        if delta:
            CREDITS.labels(reason=reason, direction="granted" if delta > 0 else "charged").inc(abs(delta))


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_credits(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
