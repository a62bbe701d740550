"""Background jobs in both modes: a thread of the web process (no Redis) and a real RQ worker in a
subprocess (Redis), the periodic scheduler's once-per-period guarantee, and the cron alternative."""

from __future__ import annotations

import subprocess

import pytest
from rq import Queue

from app import create_app
from app.models import CreditHold
from app.runtime import jobs
from app.services import credits
from tests.conftest import build_config
from tests.servers import ROOT, app_environment, flask_command


def expired_hold(app, user_id: int, key: str) -> int:
    from app.extensions import db

    with app.app_context():
        hold = credits.place_hold(db.session, user_id=user_id, amount=40, idempotency_key=key, ttl_s=-5)
        return hold.id


def hold_status(app, hold_id: int) -> str:
    from app.extensions import db

    with app.app_context():
        db.session.expire_all()
        status = db.session.get(CreditHold, hold_id).status
        db.session.remove()
        return status


def failing_job(session, reason: str) -> None:
    raise RuntimeError(reason)


@pytest.fixture
def threaded_app(app, app_config, tmp_path):
    """The same database without Redis: the embedded default's in-process jobs."""
    return create_app(build_config(str(tmp_path), DATABASE_URL=app_config.DATABASE_URL, REDIS_URL=""))


def test_without_redis_a_job_runs_in_a_thread_with_an_app_context(threaded_app, make_user):
    hold_id = expired_hold(threaded_app, make_user("threaded", balance=100).id, "hold-thread")
    with threaded_app.app_context():
        job = jobs.enqueue("app.services.credits:sweep_expired_holds")
    assert job.mode == "thread"
    assert job.wait(10)
    assert hold_status(threaded_app, hold_id) == credits.HOLD_EXPIRED


def test_a_failing_thread_job_is_logged_and_counted(threaded_app):
    import logging

    from prometheus_client import REGISTRY

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("app.runtime.jobs").addHandler(handler)
    before = REGISTRY.get_sample_value("sorya_jobs_total", {"job": "failing_job", "outcome": "failed"}) or 0
    with threaded_app.app_context():
        job = jobs.enqueue("tests.integration.test_jobs:failing_job", "disk full")
    assert job.wait(10)
    assert REGISTRY.get_sample_value("sorya_jobs_total", {"job": "failing_job", "outcome": "failed"}) == before + 1
    logging.getLogger("app.runtime.jobs").removeHandler(handler)
    assert any("failing_job failed" in record.getMessage() and record.exc_info for record in records)


def test_a_job_name_that_does_not_resolve_fails_in_the_caller(app):
    with app.app_context(), pytest.raises(ValueError, match="not a function|No module|module:function"):
        jobs.enqueue("app.services.credits:no_such_function")
    with app.app_context(), pytest.raises(ModuleNotFoundError):
        jobs.enqueue("app.services.nothing_here:sweep")


def run_worker(app_config, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        flask_command("jobs", "worker", "--burst", *extra), cwd=ROOT, env=app_environment(app_config),
        capture_output=True, text=True, timeout=120,
    )


def test_with_redis_jobs_go_to_rq_and_a_worker_process_runs_them(app, app_config, make_user):
    from app import runtime

    user = make_user("queued", balance=100)
    hold_id = expired_hold(app, user.id, "hold-rq")
    with app.app_context():
        ok = jobs.enqueue("app.services.credits:sweep_expired_holds")
        failed = jobs.enqueue("tests.integration.test_jobs:failing_job", "provider down")
        queue = Queue(jobs.QUEUE_NAME, connection=runtime.redis_client())
        assert ok.mode == "rq" and queue.count == 2
    assert hold_status(app, hold_id) == credits.HOLD_ACTIVE  # nothing ran in this process

    finished = run_worker(app_config, "--no-periodic")
    assert finished.returncode == 0, finished.stderr
    assert hold_status(app, hold_id) == credits.HOLD_EXPIRED
    with app.app_context():
        queue = Queue(jobs.QUEUE_NAME, connection=runtime.redis_client())
        assert queue.count == 0
        assert queue.fetch_job(ok.id).get_status() == "finished"
        assert queue.fetch_job(ok.id).return_value() == 1
        assert queue.fetch_job(failed.id).get_status() == "failed"
    assert "provider down" in finished.stderr


def test_the_periodic_scheduler_enqueues_each_job_once_per_period(app):
    from app import runtime

    with app.app_context():
        connection = runtime.redis_client()
        first = jobs.enqueue_due_periodic_jobs(connection, owner="worker-a")
        second = jobs.enqueue_due_periodic_jobs(connection, owner="worker-b")
        assert "sweeps" in first
        assert first == list(jobs.PERIODIC_JOBS)
        assert second == []  # another worker in the same period enqueues nothing
        queue = Queue(jobs.QUEUE_NAME, connection=connection)
        assert queue.count == len(first)
        ttl = connection.ttl(f"{jobs.PERIODIC_KEY_PREFIX}sweeps")
        assert 0 < ttl <= jobs.PERIODIC_JOBS["sweeps"].every_s


def test_a_worker_runs_the_periodic_sweep_itself(app, app_config, make_user):
    hold_id = expired_hold(app, make_user("periodic", balance=100).id, "hold-periodic")
    # A burst worker schedules the due periodic jobs as it starts, then drains the queue.
    for _ in range(3):
        finished = run_worker(app_config)
        assert finished.returncode == 0, finished.stderr
        if hold_status(app, hold_id) == credits.HOLD_EXPIRED:
            break
    assert hold_status(app, hold_id) == credits.HOLD_EXPIRED


def test_run_periodic_is_the_cron_alternative(app, make_user):
    hold_id = expired_hold(app, make_user("cron", balance=100).id, "hold-cron")
    result = app.test_cli_runner().invoke(args=["jobs", "run-periodic"])
    assert result.exit_code == 0, result.output
    assert "'expired holds released': 1" in result.output
    assert hold_status(app, hold_id) == credits.HOLD_EXPIRED
    again = app.test_cli_runner().invoke(args=["jobs", "run-periodic", "sweeps"])
    assert "'expired holds released': 0" in again.output


def test_run_periodic_names_unknown_jobs(app):
    result = app.test_cli_runner().invoke(args=["jobs", "run-periodic", "sweep_everything"])
    assert result.exit_code != 0 and "No periodic job named sweep_everything" in result.output


def test_the_worker_explains_that_it_needs_redis(threaded_app):
    result = threaded_app.test_cli_runner().invoke(args=["jobs", "worker", "--burst"])
    assert result.exit_code != 0 and "REDIS_URL is not set" in result.output


def test_jobs_list_shows_the_registry(app):
    output = app.test_cli_runner().invoke(args=["jobs", "list"]).output
    assert "sweeps\tevery 60s\tapp.jobs:run_sweeps_job" in output
    assert "collect_garbage_blobs\tevery 3600s\tapp.services.snapshots:collect_all_garbage_blobs" in output
