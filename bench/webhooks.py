"""Stripe webhooks under load: signed events, 30 % duplicates, shuffled, from 8 concurrent senders.

The app runs under gunicorn (2 workers x 4 threads) on MariaDB against the Stripe emulator. The events
are real: users subscribe through `billing.start_checkout`, pay at the emulator and renew; the emulator
collects the signed deliveries, and this script re-signs them at send time (a signature is only valid
for five minutes), adds duplicates, shuffles everything and posts it from 8 threads.

Printed: events per second beside the same server's `/healthz` throughput with the same senders (its
ceiling for a request that does nothing), and the credits granted beside the exact total the paid
invoices entitle (which must be equal), plus the ledger's own reconciliation.

    .venv/bin/python bench/webhooks.py [--quick]

`BENCH_DATABASE_URL` (default: MariaDB database `sorya_billing_bench`, dropped and rebuilt) chooses
the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Report, parse_args  # noqa: E402

DEFAULT_DATABASE_URL = "mysql+pymysql://sorya:sorya@127.0.0.1:3306/sorya_billing_bench?charset=utf8mb4"
STRIPE_KEY = "sk_test_bench"
WEBHOOK_SECRET = "whsec_bench"
SENDERS = 8
DUPLICATE_SHARE = 0.30
SEED = 20261125
PLAN_CREDITS = {"price_basic": 20000, "price_pro": 100000}
GRANTING_REASONS = ("subscription_create", "subscription_cycle")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sign(payload: str) -> str:
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def settings_env(database_url: str, stripe_url: str, instance_dir: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-" + "x" * 40,
        "ENCRYPTION_KEY": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=",
        "SORYA_INSTANCE_DIR": instance_dir,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_url,
        "STRIPE_PRICE_BASIC": "price_basic",
        "STRIPE_PRICE_PRO": "price_pro",
        "PUBLIC_URL": "http://127.0.0.1:5000",
    }


def build_app(env: dict[str, str]):
    from tests.conftest import recreate_mysql_database

    if env["DATABASE_URL"].startswith("mysql"):
        recreate_mysql_database(env["DATABASE_URL"])
    from flask_migrate import upgrade

    from app import create_app
    from config import Config

    app = create_app(Config.from_env(env=env))
    with app.app_context():
        upgrade()
    return app


def make_events(app, stripe, users: int, renewals: int) -> list[dict]:
    """Subscribe `users` people (alternating plans), pay, renew; the signed deliveries Stripe would send."""
    from app.extensions import db
    from app.models import User
    from app.services import billing

    control = stripe.control
    settings = billing.BillingSettings.from_config(app.extensions["sorya.config"])
    gateway = billing.stripe_gateway(settings)
    with app.app_context():
        for index in range(users):
            user = User(login=f"bench{index}", name=f"Bench {index}", email=f"bench{index}@example.com")
            db.session.add(user)
            db.session.commit()
            plan = "basic" if index % 2 == 0 else "pro"
            hosted = billing.start_checkout(db.session, gateway, settings, user, plan,
                                            success_url="http://127.0.0.1/ok", cancel_url="http://127.0.0.1/no")
            session = control.complete_checkout(hosted.id)
            for _ in range(renewals):
                control.subscription_command(session["subscription"], "renew")
        db.session.remove()
    return control.deliveries(clear=True)


def expected_credits(events: list[dict]) -> int:
    """What the paid invoices among `events` entitle to, computed from the payloads alone."""
    invoices = {}
    for event in events:
        if event["type"] in ("invoice.paid", "invoice.payment_succeeded"):
            invoice = event["data"]["object"]
            invoices[invoice["id"]] = invoice
    total = 0
    for invoice in invoices.values():
        if invoice["status"] == "paid" and invoice["billing_reason"] in GRANTING_REASONS:
            price = invoice["lines"]["data"][0]["pricing"]["price_details"]["price"]
            total += PLAN_CREDITS[price]
    return total


def post_all(url: str, bodies: list[tuple[str, str | None]]) -> tuple[float, Counter]:
    """Post every (payload, kind) from SENDERS threads; returns elapsed seconds and outcome counts."""
    cursor = iter(range(len(bodies)))
    lock = threading.Lock()
    outcomes: Counter = Counter()

    def sender() -> None:
        session = requests.Session()
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            payload, kind = bodies[index]
            if kind is None:
                response = session.get(url, timeout=60)
                outcome = str(response.status_code)
            else:
                response = session.post(url, data=payload.encode(), timeout=60, headers={
                    "Content-Type": "application/json", "Stripe-Signature": sign(payload)})
                outcome = response.json().get("status", str(response.status_code)) if response.ok else str(
                    response.status_code)
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, outcomes


def start_gunicorn(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(gunicorn), "-w", "2", "--threads", "4", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
         "wsgi:app"],
        cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).ok:
                return process
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"gunicorn did not start; see {log_path}")


def ledger_totals(app) -> tuple[int, int]:
    """(credits granted by plan grants, users whose balance differs from their ledger)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import CreditBalance, LedgerEntry

    with app.app_context():
        granted = db.session.execute(
            select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.reason == "plan_grant")
        ).scalar_one()
        sums = dict(db.session.execute(
            select(LedgerEntry.user_id, func.sum(LedgerEntry.delta)).group_by(LedgerEntry.user_id)).all())
        balances = dict(db.session.execute(select(CreditBalance.user_id, CreditBalance.balance)).all())
        db.session.remove()
    differing = sum(1 for user_id in set(sums) | set(balances) if sums.get(user_id, 0) != balances.get(user_id, 0))
    return int(granted), differing


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    total = 300 if args.quick else 2000
    unique = round(total * (1 - DUPLICATE_SHARE))
    # Each user yields customer.created + 4 checkout events + 3 per renewal.
    renewals = 2
    per_user = 5 + 3 * renewals
    users = -(-unique // per_user)

    from sandbox.emulators import EmulatorServer, StripeEmulator
    from sandbox.emulators.control import EmulatorControl

    server = EmulatorServer(StripeEmulator(webhook_secret=WEBHOOK_SECRET)).start()
    stripe = type("Stripe", (), {"control": EmulatorControl(server.urls["stripe"])})
    instance_dir = tempfile.mkdtemp(prefix="sorya-bench-")
    env = settings_env(os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL), server.sdk_urls["stripe"],
                       instance_dir)
    process = None
    try:
        app = build_app(env)
        deliveries = make_events(app, stripe, users, renewals)
        rng = random.Random(SEED)
        payloads = [d["payload"] for d in deliveries][:unique]
        events = [json.loads(p) for p in payloads]
        copies = [rng.choice(payloads) for _ in range(total - len(payloads))]
        bodies = [(p, "event") for p in payloads + copies]
        rng.shuffle(bodies)
        expected = expected_credits(events)

        port = free_port()
        process = start_gunicorn(env, port, Path(instance_dir) / "gunicorn.log")
        base = f"http://127.0.0.1:{port}"
        post_all(f"{base}/healthz", [("", None)] * 50)  # warm both workers
        health_s, _ = post_all(f"{base}/healthz", [("", None)] * total)
        hook_s, outcomes = post_all(f"{base}/api/webhooks/stripe", bodies)
        granted, differing = ledger_totals(app)

        print(f"events sent {len(bodies)} ({len(payloads)} unique, {len(copies)} duplicates), "
              f"{SENDERS} senders, gunicorn 2x4 on {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}")
        print("outcomes:", dict(sorted(outcomes.items())))
        print(f"credits granted {granted:,} / expected {expected:,}; balances differing from ledger: {differing}")
        report = Report("webhooks")
        report.compare("webhook_events_per_s", len(bodies) / hook_s, total / health_s, "req/s",
                       ratio_name="throughput_ratio")
        report.compare("credits_granted", granted, expected, "credits", ratio_name="credits_granted_ratio")
        report.figures["failed_requests"] = sum(n for k, n in outcomes.items() if k.isdigit())
        report.figures["duplicates_answered"] = outcomes.get("duplicate", 0)
        report.figures["ledger_mismatches"] = differing
        report.print()
        if granted != expected or differing or report.figures["failed_requests"]:
            raise SystemExit("MISMATCH: credits granted differ from what the paid invoices entitle")
    finally:
        if process is not None:
            process.terminate()
            try:  # gunicorn finishes its workers' requests first; on a loaded machine that can take a while
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server.stop()


if __name__ == "__main__":
    main()
