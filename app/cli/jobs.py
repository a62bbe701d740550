"""`flask jobs ...`: the background worker, and the periodic jobs for cron or a systemd timer."""

from __future__ import annotations

import os
import socket
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from app import runtime
from app.cli.groups import jobs
from app.runtime import jobs as background


@jobs.command("worker")
@click.option("--burst", is_flag=True, help="Run the queued jobs, then exit (for tests and one-off drains).")
@click.option("--no-periodic", is_flag=True, help="Do not schedule the periodic jobs from this worker.")
@with_appcontext
def worker(burst: bool, no_periodic: bool) -> None:
    """Run an RQ worker on the `sorya` queue, with RQ's scheduler and Sorya's periodic jobs."""
    from rq import Queue, Worker

    redis_url = runtime.settings().REDIS_URL
    if not redis_url:
        raise click.ClickException(
            "REDIS_URL is not set. Without Redis, jobs run in threads of the web process; run the periodic "
            "sweeps with `flask jobs run-periodic` from cron or deploy/sorya-sweep.timer."
        )
    app = current_app._get_current_object()
    background.bind_worker_app(app)
    connection = background.queue_connection(redis_url)
    name = f"sorya-{socket.gethostname()}-{os.getpid()}"
    stop = threading.Event()
    if not no_periodic:
        threading.Thread(
            target=background.run_scheduler, args=(connection, stop), kwargs={"owner": name},
            name="periodic-scheduler", daemon=True,
        ).start()
    rq_worker = Worker([Queue(background.QUEUE_NAME, connection=connection)], connection=connection, name=name)
    try:
        rq_worker.work(burst=burst, with_scheduler=True, logging_level=runtime.settings().LOG_LEVEL)
    finally:
        stop.set()


@jobs.command("run-periodic")
@click.argument("names", nargs=-1)
@with_appcontext
def run_periodic(names: tuple[str, ...]) -> None:
    """Run the periodic jobs (or the NAMES given) once, now, in this process; print what each did."""
    unknown = set(names) - background.PERIODIC_JOBS.keys()
    if unknown:
        raise click.ClickException(
            f"No periodic job named {', '.join(sorted(unknown))}; see `flask jobs list`."
        )
    results = background.run_periodic_once(current_app._get_current_object(), list(names) or None)
    for name, result in results.items():
        click.echo(f"{name}: {result}")
    if "failed" in results.values():
        raise SystemExit(1)


@jobs.command("list")
def list_periodic() -> None:
    """List the periodic jobs and how often each runs."""
    for job in background.PERIODIC_JOBS.values():
        click.echo(f"{job.name}\tevery {job.every_s}s\t{job.func_path}")
