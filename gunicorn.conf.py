"""Gunicorn's production configuration: `gunicorn -c gunicorn.conf.py wsgi:app` (deploy/README.md).

Every value can be set from the environment (systemd `EnvironmentFile=`, a Procfile platform):

| variable | default | meaning |
| --- | --- | --- |
| `BIND` | `127.0.0.1:8000`, or `0.0.0.0:$PORT` when `PORT` is set | where to listen (nginx proxies to it) |
| `WEB_CONCURRENCY` | number of CPU cores | worker processes |
| `GUNICORN_WORKER_CLASS` | `gevent` | `gevent` or `gthread` (see below) |
| `GUNICORN_WORKER_CONNECTIONS` | `1000` | gevent: concurrent connections per worker |
| `GUNICORN_THREADS` | `50` | gthread: threads per worker (one per open stream) |
| `GUNICORN_TIMEOUT` | `30` | seconds a worker may stay silent before the master restarts it |
| `GUNICORN_GRACEFUL_TIMEOUT` | `SHUTDOWN_GRACE_S + 10` | seconds a stopping worker gets before SIGKILL |
| `GUNICORN_MAX_REQUESTS` | `0` (never) | recycle a worker after this many requests (with jitter) |
| `PROMETHEUS_MULTIPROC_DIR` | unset | a directory for per-worker metric files; emptied here at start |

Worker class: a streamed chat reply is a request that stays open for as long as the model writes. With
`gthread` each open stream holds one thread of a fixed pool (`GUNICORN_THREADS` per worker), so the
pool size caps concurrent streams and every idle stream costs a thread stack. With `gevent` a stream
is a greenlet, a few KB, and a worker holds `GUNICORN_WORKER_CONNECTIONS` of them while its CPU serves
the rest. Sorya's stack is pure Python on the network (PyMySQL, redis-py, httpx under the OpenAI SDK,
requests under Stripe and github3.py), so gevent's monkey-patching makes every one of them cooperative.
The gevent worker patches the standard library as the worker starts, before it imports the app: so
`preload_app` stays off and this file imports nothing of the app at module level. The measured
comparison is in deploy/README.md ("Choosing the worker class"); `GUNICORN_WORKER_CLASS=gthread`
switches without any code change.

Graceful shutdown (SIGTERM, as systemd and most platforms stop a service): each worker stops accepting
connections, turns `/readyz` to 503 and runs the shutdown hooks of app/runtime/lifecycle.py, which
let running generations finish for up to `SHUTDOWN_GRACE_S` and then end the rest as failed with their
credit holds released. `graceful_timeout` is longer than that grace, so no worker is killed while it
is still releasing holds.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _default_bind() -> str:
    if os.environ.get("BIND"):
        return os.environ["BIND"]
    if os.environ.get("PORT"):
        return f"0.0.0.0:{os.environ['PORT']}"
    return "127.0.0.1:8000"


SHUTDOWN_GRACE_S = _env_int("SHUTDOWN_GRACE_S", 20)

wsgi_app = "wsgi:app"
bind = _default_bind()
workers = _env_int("WEB_CONCURRENCY", multiprocessing.cpu_count())
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
worker_connections = _env_int("GUNICORN_WORKER_CONNECTIONS", 1000)
threads = _env_int("GUNICORN_THREADS", 50) if worker_class == "gthread" else 1
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", SHUTDOWN_GRACE_S + 10)
keepalive = 5
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
# Never preload: the gevent worker must patch the standard library before the app imports it, and a
# database pool opened in the master would be shared by every forked worker.
preload_app = False
# The app writes one JSON line per request (app/web/observability.py); gunicorn's access log would
# only duplicate it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Workers' heartbeat files in memory: a slow disk must not make the master think a worker hung.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Forwarded headers only from the proxy on this host; the app's TRUSTED_PROXY_HOPS does the rest.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "sorya-web"
# gunicorn 25.1+ opens a control socket (for `gunicornc`) at one per-user path by default, so a second
# instance on the host (blue/green, or two in tests) fights over it. We manage processes with systemd.
control_socket_disable = True

if os.environ.get("LOG_FORMAT", "json").lower() == "json":
    # gunicorn's own lines (boot, worker exits, timeouts) in the same JSON shape as the app's.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "level": loglevel.upper(), "propagate": False},
            "gunicorn.access": {"handlers": [], "propagate": False},
        },
        # No root handler here: the app installs its own (app/logs.py) as it loads in each worker.
        "root": {"handlers": [], "level": loglevel.upper()},
    }


def on_starting(server) -> None:
    """Start every run with an empty metrics directory: files of dead workers would count forever."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _begin_shutdown(worker, grace_s: float) -> None:
    from app.runtime import lifecycle

    lifecycle.begin_shutdown(worker.wsgi, grace_s)


def post_worker_init(worker) -> None:
    """On SIGTERM: stop accepting (gunicorn's own handler), and run the shutdown hooks beside it."""
    # Hooks may take a few seconds past their deadline to end what is left (lifecycle.ABORT_ALLOWANCE_S).
    grace_s = min(SHUTDOWN_GRACE_S, max(graceful_timeout - 10, 0))
    stop_accepting = worker.handle_exit

    def handle_term(signum, frame) -> None:
        stop_accepting(signum, frame)
        # Beside the worker's loop, which keeps serving the open streams; they end as the hooks finish or
        # abort their generations. Under gevent this handler runs in the event loop, where nothing may
        # block (not even Thread.start), so the hooks get a greenlet.
        if worker_class == "gevent":
            import gevent

            gevent.spawn(_begin_shutdown, worker, grace_s)
        else:
            threading.Thread(target=_begin_shutdown, args=(worker, grace_s), name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, handle_term)


def worker_exit(server, worker) -> None:
    """The worker's loop has ended (its connections are closed): let running shutdown hooks finish."""
    from app.runtime import lifecycle

    # Bounded by the master anyway: it kills the worker at graceful_timeout after its SIGTERM.
    lifecycle.wait_until_shut_down(max(graceful_timeout - 2, 0))


def worker_int(worker) -> None:
    """SIGINT/SIGQUIT is a quick stop: no grace, but still fail running generations and release holds."""
    _begin_shutdown(worker, 0)


def worker_abort(worker) -> None:
    """The master timed this worker out: end what it was generating before it dies."""
    _begin_shutdown(worker, 0)
