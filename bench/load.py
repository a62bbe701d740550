"""Mixed load against one gunicorn instance with the production config, beside the server's own ceiling.

What runs (each in its own process): the OpenAI/Stripe/GitHub emulators (50 ms between streamed chunks),
gunicorn (`gunicorn.conf.py`, MariaDB database `sorya_bench_load`, Redis), and this load generator
(asyncio + aiohttp). For `--duration` seconds it drives, at the same time:

- page views: `GET /`, the signed-in pages that exist and a project's workspace page, open loop at `--page-rps` (50/s);
- chat streams: `--streams` (300) signed-in clients each holding one `POST /api/chat` event stream open,
  starting the next when one ends (closed loop);
- API calls: `GET /api/me`, `/api/credits`, `/api/projects`, `/api/openapi.json` at `--api-rps` (20/s);
- webhooks: signed Stripe events (`customer.created`) at `--webhook-rps` (2/s).

The baseline is the same load shape with every request sent to `/healthz` (a stream becomes one
`/healthz` call and a pause as long as a streamed reply): what this server can do when the app does
nothing. Printed: requests per second, p50/p95/p99 latency per kind (time to the whole response; for a
stream, time to its first event and to its end), errors, peak concurrent streams and the gunicorn
tree's peak memory. Targets (issue 10): 300 concurrent streams with zero errors, page p95 under 100 ms
at 50 requests per second.

    .venv/bin/python bench/load.py [--quick] [--worker-class gevent|gthread]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Report  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "mysql+pymysql://sorya:sorya@127.0.0.1:3306/sorya_bench_load?charset=utf8mb4"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
WEBHOOK_SECRET = "whsec_bench_load"
SECRET_KEY = "bench-secret-key-" + "x" * 40
ENCRYPTION_KEY = "YmVuY2hiZW5jaGJlbmNoYmVuY2hiZW5jaGJlbmNoYmU="  # base64 of 32 bytes, bench only
PROMPT = "Write a small Flask app with one route that says hello, in app.py, and explain it."


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same shape, smaller: under a minute")
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (60; quick: 12)")
    parser.add_argument("--streams", type=int, default=None, help="concurrent chat streams (300; quick: 30)")
    parser.add_argument("--page-rps", type=float, default=50)
    parser.add_argument("--api-rps", type=float, default=20)
    parser.add_argument("--webhook-rps", type=float, default=2)
    parser.add_argument("--chunk-delay-ms", type=float, default=50)
    parser.add_argument("--worker-class", default=os.environ.get("GUNICORN_WORKER_CLASS", "gevent"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.duration = args.duration or (12 if args.quick else 60)
    args.streams = args.streams if args.streams is not None else (30 if args.quick else 300)
    return args


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the processes under test ------------------------------------------------------------------------


def start_emulators(chunk_delay_ms: float) -> tuple[subprocess.Popen, dict[str, str]]:
    ready = Path(tempfile.mkdtemp(prefix="bench-load-")) / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.emulators", "--latency-ms", str(chunk_delay_ms),
         "--stripe-webhook-secret", WEBHOOK_SECRET, "--ready-file", str(ready)],
        cwd=ROOT, stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ready.exists() and ready.stat().st_size:
            return process, json.loads(ready.read_text())
        time.sleep(0.1)
    process.terminate()
    raise SystemExit("the emulators did not start")


def app_environment(urls: dict[str, str], port: int, args: argparse.Namespace) -> dict[str, str]:
    # GEVENT_* passes through: GEVENT_MONITOR_THREAD_ENABLE=1 reports what blocks a worker's event loop.
    env = {key: value for key, value in os.environ.items()
           if key in ("PATH", "HOME", "LANG") or key.startswith("GEVENT_")}
    env.update({
        "SECRET_KEY": SECRET_KEY, "ENCRYPTION_KEY": ENCRYPTION_KEY, "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL, "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "OPENAI_API_KEY": "sk-bench-load", "OPENAI_BASE_URL": urls["openai"], "OPENAI_MODEL": "gpt-5",
        "GITHUB_CLIENT_ID": "bench", "GITHUB_CLIENT_SECRET": "bench-secret", "GITHUB_URL": urls["github"],
        "STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": urls["stripe"], "STRIPE_PRICE_BASIC": "price_basic", "STRIPE_PRICE_PRO": "price_pro",
        "API_RATE_LIMIT": "", "LOG_LEVEL": "WARNING", "SORYA_INSTANCE_DIR": tempfile.mkdtemp(prefix="bench-instance-"),
        "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(args.workers),
        "GUNICORN_WORKER_CLASS": args.worker_class, "GUNICORN_THREADS": str(max(50, args.streams // args.workers + 20)),
        "PYTHONPATH": str(ROOT),
    })
    return env


def recreate_database() -> None:
    import pymysql
    from sqlalchemy.engine import make_url

    url = make_url(DATABASE_URL)
    connection = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{url.database}`")
        cursor.execute(f"CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    connection.close()


def seed_users(env: dict[str, str], count: int) -> tuple[list[tuple[str, str]], set[str]]:
    """Create `count` users with plenty of credits; return a signed session cookie and its CSRF token
    for each, and the
    app's routes (what exists decides which requests the load sends)."""
    os.environ.update(env)
    from flask import session as flask_session
    from flask_wtf.csrf import generate_csrf

    from app import create_app
    from app.extensions import db
    from app.models import User
    from app.services.accounts import start_session
    from app.services.credits import REASON_ADJUSTMENT, post_ledger_entry
    from config import Config

    app = create_app(Config.from_env(env=env))
    user_ids = []
    with app.app_context():
        for n in range(count):
            user = User(login=f"load{n}", name=f"Load {n}")
            db.session.add(user)
            db.session.commit()
            post_ledger_entry(db.session, user_id=user.id, delta=50_000_000, reason=REASON_ADJUSTMENT,
                              idempotency_key=f"bench-load:{user.id}")
            user_ids.append(user.id)
    cookies = []
    for user_id in user_ids:
        # A fresh request (and app) context per user: Flask-WTF caches the signed token in `g`.
        with app.test_request_context():
            session_id = start_session(db.session, user_id, max_age=timedelta(days=1))
            flask_session["_user_id"] = f"{user_id}:{session_id}"
            flask_session["_fresh"] = True
            csrf = generate_csrf()  # stored in the session, as the first page view would
            cookies.append((app.session_interface.get_signing_serializer(app).dumps(dict(flask_session)), csrf))
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    if user_ids and "/projects/<int:project_id>" in routes:
        routes.add(seed_workspace(app, user_ids[0]))
    return cookies, routes


def seed_workspace(app, user_id: int) -> str:
    """A project with one small static site version for the page browser's user: its workspace page joins
    the page mix (the address is returned, and added to the routes)."""
    from app.extensions import db
    from app.services.projects import create_project
    from app.services.snapshots import IncomingFile, SnapshotLimits, take_snapshot_from_files

    site = {"index.html": b'<!doctype html><link rel="stylesheet" href="style.css"><h1>Bench</h1>\n',
            "style.css": b"h1 { color: teal; }\n", "app.js": b"document.body.dataset.ready = 'true';\n"}
    with app.app_context():
        project = create_project(db.session, user_id=user_id, name="Bench workspace")
        take_snapshot_from_files(db.session, user_id=user_id, project_id=project.id,
                                 files=[IncomingFile(path, data, "upload") for path, data in site.items()],
                                 limits=SnapshotLimits(max_files=100, max_file_bytes=1_000_000, max_total_bytes=10_000_000))
        return f"/projects/{project.id}"


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (gunicorn's master and workers)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
        for each in pids:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


# -- the load -----------------------------------------------------------------------------------------


@dataclass
class Kind:
    latencies_s: list[float] = field(default_factory=list)
    offsets_s: list[float] = field(default_factory=list)  # when each timed request started, in the phase
    paths: list[str] = field(default_factory=list)
    first_event_s: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


@dataclass
class Phase:
    kinds: dict[str, Kind] = field(default_factory=lambda: {k: Kind() for k in ("page", "api", "webhook", "stream")})
    active_streams: int = 0
    peak_streams: int = 0
    peak_rss: int = 0
    requests: int = 0
    elapsed_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def signed_webhook(event_id: str) -> tuple[bytes, str]:
    payload = json.dumps({"id": event_id, "object": "event", "type": "customer.created", "created": int(time.time()),
                          "api_version": "2025-09-30.clover", "livemode": False,
                          "data": {"object": {"id": f"cus_{event_id}", "object": "customer"}}}).encode()
    stamp = int(time.time())
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={stamp},v1={signature}"


class Load:
    def __init__(self, base: str, cookies: list[str], routes: set[str], args, *, baseline: bool, gunicorn_pid: int):
        self.base, self.cookies, self.args, self.baseline = base, cookies, args, baseline
        self.gunicorn_pid = gunicorn_pid
        self.phase = Phase()
        pages = ["/", "/projects", "/chat", "/usage", "/account", "/plans"]
        self.pages = [p for p in pages if p in routes] or ["/"]
        # The seeded project's workspace page (seed_workspace), when the app has one.
        self.pages += [p for p in routes if p.startswith("/projects/") and p.rsplit("/", 1)[1].isdigit()]
        self.api_paths = [p for p in ("/api/me", "/api/credits", "/api/projects", "/api/openapi.json")
                          if p in routes] or ["/api/openapi.json"]
        self.has_chat = "/api/chat" in routes
        self.has_webhook = "/api/webhooks/stripe" in routes
        self.stream_s_estimate = 3.0

    def target(self, path: str) -> str:
        return f"{self.base}{'/healthz' if self.baseline else path}"

    async def timed(self, kind: str, request) -> None:
        started = time.perf_counter()
        self.phase.requests += 1
        try:
            async with request() as response:
                await response.read()
                if response.status >= 400:
                    self.phase.kinds[kind].error(f"{response.status} {response.url.path}")
                    return
        except Exception as exc:  # noqa: BLE001 - every failure is an error of this kind
            self.phase.kinds[kind].error(type(exc).__name__)
            return
        self.phase.kinds[kind].latencies_s.append(time.perf_counter() - started)
        self.phase.kinds[kind].offsets_s.append(started - self.phase.started)
        self.phase.kinds[kind].paths.append(response.url.path)

    async def open_loop(self, kind: str, rps: float, make_request, stop_at: float) -> None:
        if rps <= 0:
            return
        interval, tasks, next_at = 1.0 / rps, set(), time.perf_counter()
        while next_at < stop_at:
            task = asyncio.create_task(self.timed(kind, make_request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        if tasks:
            await asyncio.wait(tasks, timeout=30)

    async def stream_client(self, session, csrf: str, stop_at: float) -> None:
        kind = self.phase.kinds["stream"]
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            self.phase.requests += 1
            if self.baseline or not self.has_chat:
                await self.timed("stream", lambda: session.get(f"{self.base}/healthz"))
                await asyncio.sleep(self.stream_s_estimate)
                continue
            self.phase.active_streams += 1
            self.phase.peak_streams = max(self.phase.peak_streams, self.phase.active_streams)
            try:
                async with session.post(f"{self.base}/api/chat", json={"message": PROMPT},
                                        headers={"Accept": "text/event-stream", "X-CSRFToken": csrf}) as response:
                    if response.status != 200:
                        kind.error(f"{response.status} {(await response.text())[:120]}")
                        await asyncio.sleep(1)
                        continue
                    first, last_event = None, None
                    async for raw in response.content:
                        line = raw.decode().strip()
                        if line.startswith("event:"):
                            last_event = line.split(":", 1)[1].strip()
                            if first is None:
                                first = time.perf_counter() - started
                    if last_event != "done":
                        kind.error(f"ended with {last_event}")
                        continue
                    kind.first_event_s.append(first or 0.0)
                    kind.latencies_s.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001
                kind.error(type(exc).__name__)
            finally:
                self.phase.active_streams -= 1

    async def sample_memory(self, stop_at: float) -> None:
        while time.perf_counter() < stop_at:
            self.phase.peak_rss = max(self.phase.peak_rss, tree_rss_bytes(self.gunicorn_pid))
            await asyncio.sleep(0.5)

    async def run(self) -> Phase:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=120)
        # unsafe=True: aiohttp's cookie jar otherwise drops every cookie for an IP address like 127.0.0.1.
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as shared:
            stream_sessions = []
            for cookie, csrf in self.cookies[: self.args.streams]:
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2), timeout=timeout,
                                                cookie_jar=aiohttp.CookieJar(unsafe=True), cookies={"session": cookie})
                stream_sessions.append((session, csrf))
            # Pages and API calls come from one signed-in browser: its jar keeps the session cookie the
            # server sets (sending the seeded cookie every time would have the server re-sign it each time).
            browser = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout,
                                            cookie_jar=aiohttp.CookieJar(unsafe=True),
                                            cookies={"session": self.cookies[0][0]})
            started = self.phase.started = time.perf_counter()
            stop_at = started + self.args.duration
            webhook_count = iter(range(10**9))

            def page_request():
                return browser.get(self.target(random.choice(self.pages)))

            def api_request():
                return browser.get(self.target(random.choice(self.api_paths)))

            def webhook_request():
                if self.baseline or not self.has_webhook:
                    return shared.get(f"{self.base}/healthz")
                payload, signature = signed_webhook(f"evt_load_{os.getpid()}_{next(webhook_count)}")
                return shared.post(f"{self.base}/api/webhooks/stripe", data=payload,
                                   headers={"Stripe-Signature": signature, "Content-Type": "application/json"})

            await asyncio.gather(
                self.open_loop("page", self.args.page_rps, page_request, stop_at),
                self.open_loop("api", self.args.api_rps, api_request, stop_at),
                self.open_loop("webhook", self.args.webhook_rps, webhook_request, stop_at),
                *(self.stream_client(session, csrf, stop_at) for session, csrf in stream_sessions),
                self.sample_memory(stop_at),
            )
            # Requests started within the window, over the window (the last streams may end after it).
            self.phase.elapsed_s = self.args.duration
            for session, _ in stream_sessions:
                await session.close()
            await browser.close()
        return self.phase


def p95_by_window(kind: Kind, window_s: float = 10.0) -> list[float]:
    """The p95 latency (ms) of the requests started in each `window_s` of the phase: where the tail is."""
    windows: dict[int, list[float]] = {}
    for offset, latency in zip(kind.offsets_s, kind.latencies_s, strict=True):
        windows.setdefault(int(offset // window_s), []).append(latency)
    return [round(percentile(windows[w], 0.95) * 1000, 1) for w in sorted(windows)]


def p95_by_path(kind: Kind) -> dict[str, float]:
    """The p95 latency (ms) of each path: which page the tail comes from."""
    paths: dict[str, list[float]] = {}
    for path, latency in zip(kind.paths, kind.latencies_s, strict=True):
        paths.setdefault(path, []).append(latency)
    return {path: round(percentile(values, 0.95) * 1000, 1) for path, values in sorted(paths.items())}


def summarize(name: str, phase: Phase) -> dict[str, float]:
    figures = {"rps": phase.requests / phase.elapsed_s if phase.elapsed_s else 0.0,
               "errors": sum(k.errors for k in phase.kinds.values()),
               "peak_streams": phase.peak_streams, "peak_rss_mb": phase.peak_rss / 2**20}
    for kind_name, kind in phase.kinds.items():
        for label, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            figures[f"{kind_name}_{label}_ms"] = percentile(kind.latencies_s, fraction) * 1000
        figures[f"{kind_name}_errors"] = kind.errors
    figures["stream_first_event_p95_ms"] = percentile(phase.kinds["stream"].first_event_s, 0.95) * 1000
    figures["streams_completed"] = len(phase.kinds["stream"].latencies_s)
    for kind_name, kind in phase.kinds.items():
        if kind.error_samples:
            print(f"  [{name}] {kind_name} errors, e.g.: {kind.error_samples}", file=sys.stderr)
    return figures


def main() -> None:
    args = parse_args()
    emulators, urls = start_emulators(args.chunk_delay_ms)
    port = free_port()
    env = app_environment(urls, port, args)
    gunicorn = None
    try:
        recreate_database()
        subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "db", "upgrade"],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        cookies, routes = seed_users(env, max(args.streams, 1))
        log = open(Path(env["SORYA_INSTANCE_DIR"]) / "gunicorn.log", "wb")  # noqa: SIM115 - closed at exit
        gunicorn = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        import requests

        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        print(f"load: {args.duration:.0f}s per phase, {args.streams} streams, {args.page_rps:g} pages/s, "
              f"{args.api_rps:g} API/s, {args.webhook_rps:g} webhooks/s, worker class {args.worker_class} "
              f"x{args.workers}; chat {'available' if '/api/chat' in routes else 'NOT available (streams = healthz)'}")
        measured = asyncio.run(Load(base, cookies, routes, args, baseline=False, gunicorn_pid=gunicorn.pid).run())
        load = Load(base, cookies, routes, args, baseline=True, gunicorn_pid=gunicorn.pid)
        done = measured.kinds["stream"].latencies_s
        if load.has_chat and done:
            load.stream_s_estimate = sum(done) / len(done)
        baseline = asyncio.run(load.run())
    finally:
        if gunicorn:
            gunicorn.send_signal(signal.SIGTERM)
            gunicorn.wait(60)
            print(f"gunicorn's log: {Path(env['SORYA_INSTANCE_DIR']) / 'gunicorn.log'}", file=sys.stderr)
        emulators.terminate()
    figures, ceiling = summarize("sorya", measured), summarize("healthz", baseline)
    report = Report("load")
    report.compare("requests_per_second", figures["rps"], ceiling["rps"], "req/s", "throughput_ratio")
    for kind in ("page", "api", "webhook"):
        for label in ("p50", "p95", "p99"):
            report.compare(f"{kind}_{label}_ms", figures[f"{kind}_{label}_ms"], ceiling[f"{kind}_{label}_ms"], "ms")
    report.compare("stream_first_event_p95_ms", figures["stream_first_event_p95_ms"],
                   ceiling["stream_p95_ms"], "ms")
    report.compare("stream_p95_ms", figures["stream_p95_ms"], ceiling["stream_p95_ms"], "ms")
    report.compare("streams_completed", figures["streams_completed"], ceiling["streams_completed"])
    report.compare("peak_concurrent_streams", figures["peak_streams"], args.streams, "", "streams_held_ratio")
    # Counts whose baseline is usually zero: shown beside it, without a ratio.
    for name in ("errors", "stream_errors", "page_errors", "api_errors", "webhook_errors"):
        report.figures[name], report.baselines[name] = figures[name], ceiling[name]
        report.rows.append((name, f"{figures[name]:g}", f"{ceiling[name]:g}", "-"))
    report.compare("peak_memory_mb", figures["peak_rss_mb"], ceiling["peak_rss_mb"], "MB")
    print(f"page p95 per 10 s of the run (ms): sorya {p95_by_window(measured.kinds['page'])}, "
          f"healthz {p95_by_window(baseline.kinds['page'])}")
    print(f"p95 per path (ms): {p95_by_path(measured.kinds['page'])} {p95_by_path(measured.kinds['api'])}")
    report.print()


if __name__ == "__main__":
    main()
