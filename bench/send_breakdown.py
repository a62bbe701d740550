"""Where the milliseconds of a send go before its first token, beside the provider read directly.

One Sorya app in this process (MariaDB + Redis, as `chat_stream.py`), the OpenAI emulator in a thread
with 20 ms chunks. Each send is `POST /api/chat` with a bearer token and `Accept: text/event-stream`,
read until its first `delta` event, one at a time. The phases of each send are timed by wrapping the
functions that do them (the wrappers cost a few microseconds) and reported as medians:

- auth: the bearer token's lookup; limit: the rate limit's Redis calls; admit: the send slot;
- history: the conversation load and prompt build; lock: the balance lock; store: the two message rows;
  hold: the hold's insert; commit: the send's one commit; start: publishing the stream's `start`;
- provider: from the provider call to its first text (the SDK's request plus the emulator's first chunk);
- first token (total): the client's POST to the first `delta` it reads.

Beside them, the same emulator reply read (a) by raw HTTP (`http.client`) and (b) through the OpenAI SDK
call Sorya makes (`openai_client.stream_reply`), both to the first text: their difference is the SDK's
own per-request overhead, a floor Sorya cannot go below without dropping the SDK.

    .venv/bin/python bench/send_breakdown.py [--quick] [--sends N]

`BENCH_DATABASE_URL` (default MariaDB `sorya_send_bench`, rebuilt) and `BENCH_REDIS_URL` (default
`redis://127.0.0.1:6379/8`, flushed) choose the stores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Report  # noqa: E402

DEFAULT_DATABASE_URL = "mysql+pymysql://sorya:sorya@127.0.0.1:3306/sorya_send_bench?charset=utf8mb4"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
CHUNK_DELAY_MS = 20
OPENAI_KEY = "sk-bench"

PHASES: dict[str, list[float]] = defaultdict(list)
_current: dict[str, float] = {}


def _timed(owner: object, attribute: str, label: str) -> None:
    """Replace `owner.attribute` by a wrapper adding its duration (ms) to this send's `label`."""
    original = getattr(owner, attribute)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _current[label] = _current.get(label, 0.0) + 1000 * (time.perf_counter() - started)

    setattr(owner, attribute, wrapper)


def instrument() -> None:
    from flask_limiter import Limiter
    from sqlalchemy.orm import Session

    from app.runtime import admission, redis_streams
    from app.services import api_tokens
    from app.services.chat import generation, sending
    from app.web import chat as web_chat

    _timed(api_tokens, "authenticate", "auth")
    _timed(Limiter, "_check_request_limit", "limit")
    _timed(web_chat, "admit_send", "admit")
    _timed(sending, "_prompt_for", "history")
    _timed(sending, "_lock_reply_room", "lock")
    _timed(sending, "_add_message_and_reply", "store")
    _timed(sending, "_hold_reply_cost", "hold")
    _timed(Session, "commit", "commit")
    _timed(redis_streams.RedisReplyStreams, "start", "start")
    _timed(web_chat.chat, "send_message", "send_message")

    original_start = web_chat.chat.start_generation

    def start_generation(app, job, streams, **options):
        _current["generation_started_at"] = time.perf_counter()
        return original_start(app, job, streams, **options)

    web_chat.chat.start_generation = start_generation
    original_add = generation.Generation.add_text

    def add_text(self, text):
        _current.setdefault("first_text_at", time.perf_counter())
        return original_add(self, text)

    generation.Generation.add_text = add_text
    del admission  # imported so its hooks exist before the app is built


def raw_first_text_ms(emulator_url: str) -> float:
    parts = urlsplit(emulator_url)
    body = json.dumps({"model": "gpt-5", "messages": [{"role": "user", "content": "bench"}], "stream": True,
                       "stream_options": {"include_usage": True}})
    started = time.perf_counter()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("POST", "/v1/chat/completions", body=body,
                       headers={"Authorization": f"Bearer {OPENAI_KEY}", "Content-Type": "application/json"})
    response = connection.getresponse()
    while b'"content":"w' not in (line := response.readline()):  # the first scripted piece, not the role
        if not line:
            raise SystemExit("the emulator's reply had no text")
    elapsed = 1000 * (time.perf_counter() - started)
    response.read()
    connection.close()
    return elapsed


def sdk_first_text_ms(provider) -> tuple[float, float]:
    """(request accepted, first text) in ms through the SDK call Sorya makes."""
    from app.providers import openai_client

    started = time.perf_counter()
    stream = openai_client.stream_reply(provider, model="gpt-5", messages=[{"role": "user", "content": "bench"}],
                                        max_completion_tokens=1000)
    accepted = time.perf_counter()
    first = None
    for event in stream:
        if first is None and isinstance(event, openai_client.TextDelta):
            first = time.perf_counter()
    return 1000 * (accepted - started), 1000 * (first - started)


def main() -> None:  # noqa: PLR0915 - a bench's script reads best top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 sends instead of 40")
    parser.add_argument("--sends", type=int, default=None)
    args = parser.parse_args()
    sends = args.sends or (15 if args.quick else 40)

    import redis

    from sandbox.emulators.control import EmulatorControl
    from sandbox.emulators.openai_emulator import OpenAIEmulator
    from sandbox.emulators.server import EmulatorServer

    emulator = EmulatorServer(OpenAIEmulator(models=("gpt-5",))).start()
    control = EmulatorControl(emulator.url)
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    instance_dir = tempfile.mkdtemp(prefix="sorya-send-bench-")
    from bench.chat_stream import sorya_env

    env = sorya_env(database_url, redis_url, emulator.url, instance_dir)
    instrument()

    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.models import User
    from app.providers.openai_client import ClientSettings
    from app.services import api_tokens
    from app.services.credits import post_ledger_entry
    from config import Config
    from tests.conftest import recreate_mysql_database

    if database_url.startswith("mysql"):
        recreate_mysql_database(database_url)
    redis.Redis.from_url(redis_url).flushdb()
    app = create_app(Config.from_env(env=env))
    with app.app_context():
        upgrade()
        user = User(login="bench", name="Bench")
        db.session.add(user)
        db.session.commit()
        post_ledger_entry(db.session, user_id=user.id, delta=10_000_000, reason="adjustment",
                          idempotency_key="bench:credits")
        plaintext = api_tokens.create_token(db.session, user_id=user.id, name="bench", scope="write").plaintext
        db.session.remove()
    headers = {"Authorization": f"Bearer {plaintext}", "Accept": "text/event-stream"}
    client = app.test_client()
    reply = {"chunks": [f"w{i:06d} " for i in range(5)], "chunk_delay_ms": CHUNK_DELAY_MS}
    provider = ClientSettings(base_url=f"{emulator.url}/v1", api_key=OPENAI_KEY, timeout_s=30)

    totals, raw, sdk_accept, sdk_first = [], [], [], []
    try:
        for index in range(sends + 2):  # two warm-ups
            control._call("POST", "script", {"replies": [reply] * 3})
            raw_ms = raw_first_text_ms(emulator.url)
            accepted_ms, first_ms = sdk_first_text_ms(provider)
            _current.clear()
            started = time.perf_counter()
            response = client.post("/api/chat", json={"message": f"bench {index}"}, headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"send failed: {response.status_code} {response.get_data(as_text=True)[:300]}")
            got_delta = False
            for piece in response.response:
                if b"event: delta" in (piece if isinstance(piece, bytes) else piece.encode()):
                    got_delta = True
                    break
            first_token_ms = 1000 * (time.perf_counter() - started)
            response.close()
            if not got_delta:
                raise SystemExit("the reply ended without a delta")
            if index < 2:
                continue
            totals.append(first_token_ms)
            raw.append(raw_ms)
            sdk_accept.append(accepted_ms)
            sdk_first.append(first_ms)
            for label in ("auth", "limit", "admit", "history", "lock", "store", "hold", "commit", "start",
                          "send_message"):
                PHASES[label].append(_current.get(label, 0.0))
            if "first_text_at" in _current and "generation_started_at" in _current:
                PHASES["provider"].append(1000 * (_current["first_text_at"] - _current["generation_started_at"]))
            time.sleep(0.25)  # let the reply end (its ledger transaction) before the next send
    finally:
        from app.services.chat import GENERATIONS

        GENERATIONS.wait_idle(10)
        emulator.stop()
        redis.Redis.from_url(redis_url).flushdb()

    med = statistics.median
    print(f"\n== {sends} sends, one at a time, first token of a 20 ms-chunk reply (medians, ms) ==")
    for label in ("auth", "limit", "admit", "history", "lock", "store", "hold", "commit", "start"):
        print(f"  {label:<10} {med(PHASES[label]):7.2f}")
    send_ms = med(PHASES["send_message"])
    provider_ms = med(PHASES["provider"])
    total_ms = med(totals)
    print(f"  {'send_message (history..start)':<30} {send_ms:7.2f}")
    print(f"  {'provider (start_generation -> first text)':<30} {provider_ms:7.2f}")
    print(f"  {'first token, client side':<30} {total_ms:7.2f}")
    print(f"  {'emulator raw HTTP first text':<30} {med(raw):7.2f}")
    print(f"  {'emulator via SDK: accepted':<30} {med(sdk_accept):7.2f}")
    print(f"  {'emulator via SDK: first text':<30} {med(sdk_first):7.2f}  (SDK overhead "
          f"{med(sdk_first) - med(raw):.2f} ms)")
    print(f"  added by Sorya vs SDK direct: {total_ms - med(sdk_first):.2f} ms; vs raw HTTP: "
          f"{total_ms - med(raw):.2f} ms")
    report = Report("send_breakdown")
    for label in ("auth", "limit", "admit", "history", "lock", "store", "hold", "commit", "start",
                  "send_message", "provider"):
        report.figures[f"{label}_ms"] = round(med(PHASES[label]), 3)
    report.compare("first_token_ms", total_ms, med(raw), "ms")
    report.baselines["sdk_first_text_ms"] = round(med(sdk_first), 3)
    report.figures["sdk_overhead_ms"] = round(med(sdk_first) - med(raw), 3)
    report.figures["added_vs_raw_ms"] = round(total_ms - med(raw), 3)
    report.figures["added_vs_sdk_ms"] = round(total_ms - med(sdk_first), 3)
    report.print()


if __name__ == "__main__":
    main()
