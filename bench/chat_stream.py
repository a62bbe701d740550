"""Chat streams through Sorya versus straight from the emulator: time to first token and throughput.

Sorya runs under gunicorn (2 workers, `--worker-class gevent` by default, or `gthread`) on MariaDB and
Redis; the OpenAI emulator runs in its own process with 20 ms between chunks. This process is the bench
client (asyncio + aiohttp) and reads, at each concurrency, the same scripted replies:

- baseline: `POST /v1/chat/completions` on the emulator directly (what the SDK itself would see);
- Sorya: `POST /api/chat` with `Accept: text/event-stream` (the contract's stream, one user per stream).

Each reply is `--chunks` pieces of 8 characters, so received text converts exactly into chunks. The
throughput figure (and its 0.9 target) is the *wave rate*: chunks per second over the whole wave, first
request to last byte, so it includes every reply's start and end; the ideal is streams x 50/s. Printed
per concurrency: ideal, baseline and Sorya wave rates and their ratio; the *streaming rate* (each
stream's chunks after its first read over its first-to-last read time, summed: how well Sorya keeps up
once replies flow);
the *start-up overhead* (Sorya's wave time minus the baseline's: what a burst of sends costs, so the
ratio for another reply length L is about L / (L + overhead)); time to first token p50/p95 for both;
errors; gunicorn's peak memory (RSS of master and workers) and CPU; then the largest concurrency (of
200, 500, 1,000) at which Sorya holds 0.9 of the baseline.

The single stream (concurrency 1) is measured `SINGLE_REPEATS` times in a row, with replies of at most
150 chunks, and reports the medians: one sample of a 20 ms figure is too noisy to judge.

    .venv/bin/python bench/chat_stream.py [--quick] [--worker-class gevent|gthread] [--concurrency 1,200]
        [--render-only]

It also measures the page's streaming render (`bench/render_cost.py`): CPU per delivered chunk of a long
reply against a short one, `render_cpu_ratio` in the JSON line (target: at most 1.2).

Full: 1, 200, 500 and 1,000 streams of 1,000 chunks, i.e. replies of about 1,000 tokens written at 50
tokens per second (20 s): the size of a typical code-writing reply. `--quick`: 1 and 200 streams of
150 chunks (3 s replies: the start-up overhead weighs ~7x more in the ratio than in the full run).
`BENCH_DATABASE_URL` (default MariaDB `sorya_chat_bench`, rebuilt) and `BENCH_REDIS_URL` (default
`redis://127.0.0.1:6379/8`, flushed) choose the stores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import render_cost  # noqa: E402
from bench.common import Report  # noqa: E402

DEFAULT_DATABASE_URL = "mysql+pymysql://sorya:sorya@127.0.0.1:3306/sorya_chat_bench?charset=utf8mb4"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
CHUNK_DELAY_MS = 20
CHUNK_CHARS = 8
OPENAI_KEY = "sk-bench"
HOLD_RATIO = 0.9
SINGLE_REPEATS = 5
SINGLE_MAX_CHUNKS = 150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the emulator, in its own process ------------------------------------------------------------------


def _serve_emulator(conn) -> None:
    from sandbox.emulators.openai_emulator import OpenAIEmulator
    from sandbox.emulators.server import EmulatorServer

    server = EmulatorServer(OpenAIEmulator(models=("gpt-5",))).start()
    conn.send(server.url)
    conn.recv()
    server.stop()


def start_emulator() -> tuple[str, multiprocessing.Process, object]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve_emulator, args=(child,), daemon=True)
    process.start()
    return parent.recv(), process, parent


def script_replies(control, count: int, chunks: int) -> None:
    pieces = [f"w{i:06d} " for i in range(chunks)]  # 8 characters each
    reply = {"chunks": pieces, "chunk_delay_ms": CHUNK_DELAY_MS}
    for start in range(0, count, 200):
        control._call("POST", "script", {"replies": [reply] * min(200, count - start)})


# -- Sorya under gunicorn ----------------------------------------------------------------------------


def sorya_env(database_url: str, redis_url: str, emulator_url: str, instance_dir: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-secret-" + "x" * 40,
        "ENCRYPTION_KEY": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=",
        "SORYA_INSTANCE_DIR": instance_dir,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": f"{emulator_url}/v1",
        "OPENAI_MODEL": "gpt-5",
        # Every stream is its own user; the per-user limit is not what this bench measures.
        "CHAT_RATE_LIMIT": "10000 per minute",
    }


def prepare_database(env: dict[str, str], users: int) -> list[dict[str, str]]:
    """Migrate a fresh database, create `users` accounts with credits; their session cookie and CSRF token."""
    import redis
    from flask import g, session
    from flask_migrate import upgrade
    from flask_wtf.csrf import generate_csrf

    from app import create_app
    from app.extensions import db
    from app.models import User
    from app.services.accounts import start_session
    from app.services.credits import post_ledger_entry
    from config import Config
    from tests.conftest import recreate_mysql_database

    if env["DATABASE_URL"].startswith("mysql"):
        recreate_mysql_database(env["DATABASE_URL"])
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    app = create_app(Config.from_env(env=env))
    credentials = []
    with app.app_context():
        upgrade()
        for index in range(users):
            user = User(login=f"bench{index}", name=f"Bench {index}")
            db.session.add(user)
            db.session.commit()
            post_ledger_entry(db.session, user_id=user.id, delta=10_000_000, reason="adjustment",
                              idempotency_key=f"bench:{user.id}")
            with app.test_request_context():
                g.pop("csrf_token", None)  # generate_csrf caches its token in g, shared by this app context
                session["_user_id"] = f"{user.id}:{start_session(db.session, user.id, max_age=timedelta(days=1))}"
                session["_fresh"] = True
                token = generate_csrf()
                cookie = app.session_interface.get_signing_serializer(app).dumps(dict(session))
            credentials.append({"Cookie": f"session={cookie}", "X-CSRFToken": token})
        db.session.remove()
    return credentials


def start_gunicorn(env: dict[str, str], port: int, worker_class: str, log_path: Path) -> subprocess.Popen:
    """gunicorn with the settings `gunicorn.conf.py` ships (2 workers: this machine's cores), on `port`."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    settings = {"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "GUNICORN_WORKER_CLASS": worker_class,
                "GUNICORN_TIMEOUT": "120", "LOG_LEVEL": "warning"}
    command = [str(gunicorn), "-c", "gunicorn.conf.py"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env, **settings}, stdout=log_path.open("w"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                return process
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"gunicorn did not start; see {log_path}")


def tree_pids(pid: int) -> list[int]:
    try:
        return [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return [pid]


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children."""
    total = 0
    for one in tree_pids(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (gunicorn's master and workers)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    except OSError:
        pass
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class MemoryWatch:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, tree_rss_bytes(self.pid))

    def __enter__(self) -> MemoryWatch:
        self.peak = tree_rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the client ----------------------------------------------------------------------------------------


@dataclass
class Wave:
    streams: int
    seconds: float = 0.0
    chunks: int = 0
    ttft_s: list[float] = field(default_factory=list)
    stream_rates: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    @property
    def streaming_rate(self) -> float:
        """Each stream's chunks over its first-to-last-chunk time, summed over the streams."""
        return sum(self.stream_rates)

    def record_stream(self, chunks: int, first_chunks: int, first: float | None, last: float | None) -> None:
        """One stream's rate once flowing: the chunks after its first read, over first-to-last read."""
        if first is not None and last is not None and last > first and chunks > first_chunks:
            self.stream_rates.append((chunks - first_chunks) / (last - first))

    def ttft_ms(self, quantile: float) -> float:
        if not self.ttft_s:
            return float("nan")
        ordered = sorted(self.ttft_s)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    def fail(self, reason: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(reason)


async def read_direct(session: aiohttp.ClientSession, url: str, wave: Wave) -> None:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "bench"}], "stream": True,
            "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    try:
        async with session.post(f"{url}/v1/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {OPENAI_KEY}"}) as response:
            if response.status != 200:
                wave.fail(f"HTTP {response.status}")
                return
            # Every content piece is 8 characters: counting them is enough (and keeps this client cheap).
            pieces, first_pieces, first, last, tail = 0, 0, None, None, b""
            async for data in response.content.iter_any():
                found = data.count(b'"delta":{"content":')
                if found:
                    last = time.perf_counter()
                    if first is None:
                        first, first_pieces = last, found
                pieces += found
                tail = (tail + data)[-32:]
            if b"[DONE]" not in tail:
                wave.fail("stream ended without [DONE]")
            if first:
                wave.ttft_s.append(first - started)
            wave.chunks += pieces
            wave.record_stream(pieces, first_pieces, first, last)
    except (aiohttp.ClientError, TimeoutError) as exc:
        wave.fail(repr(exc))


async def read_sorya(session: aiohttp.ClientSession, url: str, headers: dict[str, str], wave: Wave) -> None:
    started = time.perf_counter()
    try:
        async with session.post(f"{url}/api/chat", json={"message": "bench"},
                                headers={**headers, "Accept": "text/event-stream"}) as response:
            if response.status != 200:
                wave.fail(f"HTTP {response.status}: {(await response.text())[:200]}")
                return
            text_chars, first_chars, first, last, ending, buffer = 0, 0, None, None, None, b""
            async for data in response.content.iter_any():
                buffer += data
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    fields = dict(line.split(b": ", 1) for line in event.split(b"\n") if b": " in line
                                  and not line.startswith(b":"))
                    name = fields.get(b"event")
                    if name == b"delta":
                        last = time.perf_counter()
                        text_chars += len(json.loads(fields[b"data"])["text"])
                        if first is None:
                            first, first_chars = last, text_chars
                    elif name in (b"done", b"error"):
                        ending = name
            if ending != b"done":
                wave.fail(f"stream ended with {ending!r}")
            if first:
                wave.ttft_s.append(first - started)
            wave.chunks += text_chars // CHUNK_CHARS
            wave.record_stream(text_chars // CHUNK_CHARS, first_chars // CHUNK_CHARS, first, last)
    except (aiohttp.ClientError, TimeoutError) as exc:
        wave.fail(repr(exc))


async def run_wave(streams: int, reader) -> Wave:
    wave = Wave(streams)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=300, sock_connect=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(reader(session, index, wave) for index in range(streams)))
        wave.seconds = time.perf_counter() - started
    return wave


def run_waves(streams: int, reader, repeats: int) -> Wave:
    """`repeats` waves in a row, merged: chunks and seconds add up, samples pool."""
    merged = Wave(streams)
    for _ in range(repeats):
        wave = asyncio.run(run_wave(streams, reader))
        merged.seconds += wave.seconds
        merged.chunks += wave.chunks
        merged.ttft_s += wave.ttft_s
        merged.stream_rates.append(sum(wave.stream_rates))
        merged.errors += wave.errors
        merged.error_samples += wave.error_samples[: 3 - len(merged.error_samples)]
    if repeats > 1:  # a per-wave mean, so it stays comparable with the ideal of one wave
        merged.stream_rates = [sum(merged.stream_rates) / repeats]
    return merged


# -- main ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 200 streams of 150 chunks: under a minute")
    parser.add_argument("--worker-class", choices=("gevent", "gthread"), default="gevent")
    parser.add_argument("--concurrency", default=None, help="comma-separated stream counts")
    parser.add_argument("--chunks", type=int, default=None)
    parser.add_argument("--render-only", action="store_true",
                        help="only the page's streaming render cost (render_cpu_ratio), no servers")
    args = parser.parse_args()
    report = Report("chat_stream")
    # The page's rendered stream: CPU per delivered chunk of a long reply against a short one (bench/render_cost.py).
    render_cost.measure(report, quick=args.quick)
    if args.render_only:
        print()
        report.print()
        return
    levels = [int(x) for x in (args.concurrency or ("1,200" if args.quick else "1,200,500,1000")).split(",")]
    chunks = args.chunks or (150 if args.quick else 1000)

    emulator_url, emulator_process, emulator_pipe = start_emulator()
    from sandbox.emulators.control import EmulatorControl

    control = EmulatorControl(emulator_url)
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    instance_dir = tempfile.mkdtemp(prefix="sorya-chat-bench-")
    env = sorya_env(database_url, redis_url, emulator_url, instance_dir)
    credentials = prepare_database(env, max(4, *levels))
    port = free_port()
    log_path = Path(instance_dir) / "gunicorn.log"
    server = start_gunicorn(env, port, args.worker_class, log_path)
    sorya_url = f"http://127.0.0.1:{port}"
    results = []
    try:
        # One warm-up reply per worker process: the first request of each imports and connects.
        script_replies(control, 4, 5)
        for index in range(4):
            asyncio.run(run_wave(1, lambda s, _i, w, index=index: read_sorya(s, sorya_url, credentials[index], w)))
        for streams in levels:
            repeats = SINGLE_REPEATS if streams == 1 else 1
            level_chunks = min(chunks, SINGLE_MAX_CHUNKS) if streams == 1 else chunks
            control.reset()
            script_replies(control, streams * repeats, level_chunks)
            baseline = run_waves(streams, lambda s, _i, w: read_direct(s, emulator_url, w), repeats)
            control.reset()
            script_replies(control, streams * repeats, level_chunks)
            cpu_before = tree_cpu_s(server.pid)
            with MemoryWatch(server.pid) as memory:
                sorya = run_waves(streams, lambda s, i, w: read_sorya(s, sorya_url, credentials[i], w), repeats)
            cpu_used = tree_cpu_s(server.pid) - cpu_before
            time.sleep(1.0)  # let the wave's replies settle their charges before the next wave
            results.append((streams, baseline, sorya, memory.peak))
            ideal = streams * 1000 / CHUNK_DELAY_MS
            print(f"\n== {streams} concurrent stream(s), {level_chunks} chunks of {CHUNK_CHARS} chars, "
                  f"{CHUNK_DELAY_MS} ms apart, gunicorn {args.worker_class} x2"
                  f"{f', {repeats} waves in a row' if repeats > 1 else ''} ==")
            print(f"ideal rate            {ideal:,.0f} chunks/s")
            print(f"baseline (direct)     {baseline.rate:,.0f} chunks/s ({baseline.rate / ideal:.3f} of ideal), "
                  f"ttft p50 {baseline.ttft_ms(0.5):.1f} ms p95 {baseline.ttft_ms(0.95):.1f} ms, "
                  f"errors {baseline.errors}")
            print(f"sorya                 {sorya.rate:,.0f} chunks/s ({sorya.rate / baseline.rate if baseline.rate else 0:.3f}"
                  f" of baseline), ttft p50 {sorya.ttft_ms(0.5):.1f} ms p95 {sorya.ttft_ms(0.95):.1f} ms, "
                  f"errors {sorya.errors} {sorya.error_samples or ''}")
            streaming_ratio = sorya.streaming_rate / baseline.streaming_rate if baseline.streaming_rate else 0
            overhead_s = (sorya.seconds - baseline.seconds) / repeats
            print(f"streaming rate        baseline {baseline.streaming_rate:,.0f} chunks/s, sorya "
                  f"{sorya.streaming_rate:,.0f} chunks/s ({streaming_ratio:.3f}); start-up overhead "
                  f"{overhead_s:.2f} s per wave")
            print(f"gunicorn peak RSS     {memory.peak / 1e6:,.0f} MB, CPU {cpu_used:.1f} s over "
                  f"{sorya.seconds:.1f} s ({1e6 * cpu_used / max(sorya.chunks, 1):.0f} us per chunk delivered)")
            suffix = f"_{streams}"
            report.compare(f"rate_chunks_per_s{suffix}", sorya.rate, baseline.rate, "chunks/s",
                           ratio_name=f"throughput_ratio{suffix}")
            report.compare(f"ttft_p50_ms{suffix}", sorya.ttft_ms(0.5), baseline.ttft_ms(0.5), "ms")
            report.compare(f"ttft_p95_ms{suffix}", sorya.ttft_ms(0.95), baseline.ttft_ms(0.95), "ms")
            report.compare(f"streaming_rate{suffix}", sorya.streaming_rate, baseline.streaming_rate, "chunks/s",
                           ratio_name=f"streaming_ratio{suffix}")
            report.figures[f"startup_overhead_s{suffix}"] = round(overhead_s, 3)
            report.figures[f"errors{suffix}"] = sorya.errors
            report.baselines[f"errors{suffix}"] = baseline.errors
            report.figures[f"peak_rss_mb{suffix}"] = round(memory.peak / 1e6, 1)
            report.figures[f"server_cpu_s{suffix}"] = round(cpu_used, 2)
            report.baselines[f"ideal_rate{suffix}"] = ideal
            report.ratios[f"baseline_to_ideal{suffix}"] = round(baseline.rate / ideal, 4)
    finally:
        server.terminate()
        server.wait(30)
        emulator_pipe.send("stop")
        emulator_process.join(10)
        import redis

        redis.Redis.from_url(redis_url).flushdb()  # leave no reply streams behind for the tests sharing it

    holding = [s for s, base, sorya, _ in results
               if s >= 200 and sorya.errors == 0 and base.rate and sorya.rate / base.rate >= HOLD_RATIO]
    single = next(((b, s) for n, b, s, _ in results if n == 1), None)
    if single:
        report.figures["added_ttft_ms_1"] = round(single[1].ttft_ms(0.5) - single[0].ttft_ms(0.5), 2)
    report.figures["largest_concurrency_holding_0.9"] = max(holding) if holding else 0
    report.figures["worker_class"] = args.worker_class  # type: ignore[assignment]
    print()
    report.print()


if __name__ == "__main__":
    main()
