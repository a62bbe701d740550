"""Background work: one-off jobs (`enqueue`) and periodic jobs (the sweeps), with or without Redis.

A job function lives in a service module and takes the database session first, then plain values
(ids, strings): `push_snapshot(session, push_id)`. It is named by its import path,
`"app.services.publish:push_snapshot"`, so an RQ worker in another process can find it.

- `enqueue(func_path, *args)`: with `REDIS_URL` set, an RQ job on the `sorya` queue, run by
  `flask jobs worker` (any number of them, on any host); without Redis (the embedded default), a daemon
  thread in this process. Either way the function runs inside an app context, with `db.session`, and
  every log line it writes carries the job id. Commit before enqueueing: the job reads what you
  committed, from another connection.
- Periodic jobs: `register_periodic(name, func_path, every_s)`, called at import time by the module that
  owns the job. With Redis, every `flask jobs worker` runs a small scheduler thread that enqueues each
  due job, and a Redis key per job (`SET NX EX every_s`) makes that happen once per period across all
  workers. Without Redis, `start_periodic_thread(app)` runs them in-process (the sandbox launcher
  does), and `flask jobs run-periodic` runs them once from cron or a systemd timer
  (deploy/sorya-sweep.timer). Every periodic job must be safe to run twice at once.

Periodic jobs register themselves from their modules: `app.jobs.run_sweeps_job` (abandoned replies,
then expired holds, in that order) and blob garbage collection (`snapshots`).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from app.logs import REQUEST_ID

log = logging.getLogger(__name__)

QUEUE_NAME = "sorya"
JOB_TIMEOUT_S = 15 * 60
# Failed jobs stay inspectable (`rq info`, the failed registry) for a week; results for a day.
FAILURE_TTL_S = 7 * 24 * 3600
RESULT_TTL_S = 24 * 3600
PERIODIC_KEY_PREFIX = "sorya:periodic:"
SCHEDULER_TICK_S = 1.0


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    func_path: str
    every_s: int


PERIODIC_JOBS: dict[str, PeriodicJob] = {}


def register_periodic(name: str, func_path: str, every_s: int) -> None:
    """Run `func_path(session)` every `every_s` seconds wherever background work runs. Idempotent."""
    if every_s < 1:
        raise ValueError("A periodic job needs a period of at least one second.")
    PERIODIC_JOBS[name] = PeriodicJob(name, func_path, every_s)




def resolve(func_path: str) -> Callable[..., Any]:
    """The function named `"package.module:function"`; ValueError when there is none."""
    module_name, _, attr = func_path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"A job is named module:function, not {func_path!r}.")
    func = getattr(importlib.import_module(module_name), attr, None)
    if not callable(func):
        raise ValueError(f"{func_path} is not a function.")
    return func


# -- running one job -------------------------------------------------------------------------------

_worker_app: Flask | None = None
_worker_pid: int | None = None


def bind_worker_app(app: Flask) -> None:
    """Tell this worker process which app its RQ jobs run in (`flask jobs worker` does it)."""
    global _worker_app, _worker_pid
    _worker_app, _worker_pid = app, os.getpid()


def run_job(app: Flask, func_path: str, args: tuple[Any, ...], job_id: str) -> Any:
    """Run one job in an app context with a fresh session; log and count its outcome, re-raise failures."""
    from app import metrics
    from app.extensions import db

    token = REQUEST_ID.set(f"job-{job_id}")
    started = time.perf_counter()
    name = func_path.rpartition(":")[2]
    try:
        with app.app_context():
            try:
                result = resolve(func_path)(db.session, *args)
            except Exception:
                db.session.rollback()
                metrics.JOBS.labels(job=name, outcome="failed").inc()
                log.exception("job %s failed", func_path, extra={"event": "job_failed", "job": func_path})
                raise
            finally:
                db.session.remove()
        metrics.JOBS.labels(job=name, outcome="ok").inc()
        log.info(
            "job %s done", func_path,
            extra={"event": "job_done", "job": func_path, "result": repr(result)[:200],
                   "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
        )
        return result
    finally:
        REQUEST_ID.reset(token)


def execute(func_path: str, *args: Any) -> Any:
    """What an RQ worker runs for every Sorya job (the queued function is always this one)."""
    from rq import get_current_job

    app = _worker_app
    if app is None:
        # Started as a plain `rq worker`: build the app from the environment, as wsgi.py does.
        from wsgi import app
    elif _worker_pid != os.getpid():
        # RQ forks a work horse per job: connections pooled by the parent must not be shared with it.
        from app.extensions import db

        with app.app_context():
            db.engine.dispose(close=False)
    job = get_current_job()
    return run_job(app, func_path, args, job.id if job else uuid.uuid4().hex[:12])


# -- enqueueing ------------------------------------------------------------------------------------


@dataclass
class EnqueuedJob:
    """A handle on a job: its id, how it runs ("rq" or "thread"), and a way to wait for it."""

    id: str
    mode: str
    _thread: threading.Thread | None = field(default=None, repr=False)

    def wait(self, timeout_s: float) -> bool:
        """For a thread job, wait until it has finished; True when it has. RQ jobs: see `rq`."""
        if self._thread is None:
            return False
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def queue_connection(redis_url: str):
    """A Redis connection for RQ: no socket timeout, since a worker blocks on the queue for minutes."""
    import redis

    return redis.Redis.from_url(redis_url, socket_connect_timeout=5, health_check_interval=30)


def enqueue(func_path: str, *args: Any, timeout_s: int = JOB_TIMEOUT_S) -> EnqueuedJob:
    """Run `func_path(session, *args)` in the background (see the module docstring). Returns at once.

    The function is resolved now, so a typo fails in the caller, not in a worker hours later.
    """
    from app import runtime

    resolve(func_path)
    app = current_app._get_current_object()
    redis_url = runtime.settings().REDIS_URL
    if redis_url:
        from rq import Queue

        queue = Queue(QUEUE_NAME, connection=queue_connection(redis_url))
        job = queue.enqueue(
            execute, func_path, *args,
            job_timeout=timeout_s, result_ttl=RESULT_TTL_S, failure_ttl=FAILURE_TTL_S,
            description=func_path,
        )
        log.info("job %s queued", func_path, extra={"event": "job_queued", "job": func_path, "job_id": job.id})
        return EnqueuedJob(job.id, "rq")

    job_id = uuid.uuid4().hex[:12]

    def run_in_thread() -> None:
        try:
            run_job(app, func_path, args, job_id)
        except Exception:  # noqa: BLE001 - already logged and counted by run_job; a thread has no caller
            pass

    thread = threading.Thread(target=run_in_thread, name=f"job-{job_id}", daemon=True)
    thread.start()
    return EnqueuedJob(job_id, "thread", thread)


# -- periodic jobs ---------------------------------------------------------------------------------


def enqueue_due_periodic_jobs(connection, *, owner: str) -> list[str]:
    """Enqueue each periodic job whose period has elapsed; the Redis key makes it once per period
    across every scheduler. Returns the names enqueued by this call."""
    from rq import Queue

    queue = Queue(QUEUE_NAME, connection=connection)
    enqueued = []
    for job in list(PERIODIC_JOBS.values()):
        if connection.set(f"{PERIODIC_KEY_PREFIX}{job.name}", owner, nx=True, ex=job.every_s):
            queue.enqueue(
                execute, job.func_path, job_timeout=JOB_TIMEOUT_S, result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S, description=f"periodic {job.name}",
            )
            enqueued.append(job.name)
    return enqueued


def run_scheduler(connection, stop: threading.Event, *, owner: str) -> None:
    """The worker's scheduler loop: check every second until `stop` is set. Never raises."""
    while not stop.is_set():
        try:
            names = enqueue_due_periodic_jobs(connection, owner=owner)
            if names:
                log.info("periodic jobs queued: %s", ", ".join(names), extra={"event": "periodic_queued"})
        except Exception:  # noqa: BLE001 - Redis blips must not kill the scheduler; next tick retries
            log.exception("periodic scheduler tick failed")
        stop.wait(SCHEDULER_TICK_S)


def run_periodic_once(app: Flask, names: list[str] | None = None) -> dict[str, Any]:
    """Run periodic jobs now, in this process (cron / systemd timer, and `flask jobs run-periodic`).

    Returns each job's result by name; a failing job is reported as the string "failed" and the
    others still run.
    """
    results: dict[str, Any] = {}
    for job in list(PERIODIC_JOBS.values()):
        if names and job.name not in names:
            continue
        try:
            results[job.name] = run_job(app, job.func_path, (), f"{job.name}-{uuid.uuid4().hex[:8]}")
        except Exception:  # noqa: BLE001 - logged by run_job; the other sweeps still run
            results[job.name] = "failed"
    return results


def start_periodic_thread(app: Flask) -> threading.Event:
    """Without Redis: run every periodic job in a daemon thread of this process. Set the returned
    event to stop it."""
    stop = threading.Event()
    next_run = {name: time.monotonic() + job.every_s for name, job in PERIODIC_JOBS.items()}

    def loop() -> None:
        while not stop.wait(SCHEDULER_TICK_S):
            now = time.monotonic()
            due = [name for name, at in next_run.items() if at <= now and name in PERIODIC_JOBS]
            for name in due:
                next_run[name] = now + PERIODIC_JOBS[name].every_s
            if due:
                run_periodic_once(app, due)
            for name in PERIODIC_JOBS.keys() - next_run.keys():
                next_run[name] = now + PERIODIC_JOBS[name].every_s

    threading.Thread(target=loop, name="periodic-jobs", daemon=True).start()
    return stop
