"""The sandbox launcher: `python -m sandbox run [--port 5000]` (what `scripts/run` calls).

With provider keys configured (environment or .env) it migrates the database and serves the app as it
is. Without them it first starts the three provider emulators in a child process, points the app at
them (keys, base URLs, webhook secret, plan prices) and marks every page as sandbox. The app never
learns it is talking to an emulator: it sees ordinary settings.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVIDER_KEYS = ("OPENAI_API_KEY", "GITHUB_CLIENT_ID", "STRIPE_SECRET_KEY")

# Fixed ports, so links the sandbox GitHub hands out (repository pages) survive a restart of the page.
DEFAULT_EMULATOR_PORTS = {"openai": 5101, "github": 5102, "stripe": 5103}
SANDBOX_WEBHOOK_SECRET = "whsec_sandbox_local_only"
SANDBOX_GITHUB_CLIENT_ID = "sorya-sandbox"
SANDBOX_GITHUB_CLIENT_SECRET = "sorya-sandbox-secret"
SANDBOX_MODELS = "gpt-5,gpt-5-mini"


def start_emulators(app_port: int, latency_ms: int) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start the emulators in a child process and wait until they listen; return their base URLs."""
    ready_file = Path(tempfile.mkdtemp(prefix="sorya-sandbox-")) / "ready.json"
    ports = {name: int(os.environ.get(f"SANDBOX_{name.upper()}_PORT", port))
             for name, port in DEFAULT_EMULATOR_PORTS.items()}
    command = [
        sys.executable, "-m", "sandbox.emulators",
        "--openai-port", str(ports["openai"]),
        "--github-port", str(ports["github"]),
        "--stripe-port", str(ports["stripe"]),
        "--stripe-webhook-url", f"http://127.0.0.1:{app_port}/api/webhooks/stripe",
        "--stripe-webhook-secret", SANDBOX_WEBHOOK_SECRET,
        "--latency-ms", str(latency_ms),
        "--openai-models", os.environ.get("OPENAI_MODELS", SANDBOX_MODELS),
        "--github-client-id", SANDBOX_GITHUB_CLIENT_ID,
        "--github-client-secret", SANDBOX_GITHUB_CLIENT_SECRET,
        "--github-callback-url", f"http://localhost:{app_port}/auth/github/callback",
        "--ready-file", str(ready_file),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                "The provider emulators failed to start (is a port in use? set SANDBOX_OPENAI_PORT, "
                "SANDBOX_GITHUB_PORT or SANDBOX_STRIPE_PORT)."
            )
        if ready_file.exists() and ready_file.stat().st_size:
            return process, json.loads(ready_file.read_text())
        time.sleep(0.05)
    process.terminate()
    raise SystemExit("The provider emulators did not start within 15 seconds.")


def sandbox_environment(urls: dict[str, str]) -> dict[str, str]:
    return {
        "SORYA_SANDBOX": "1",
        "OPENAI_API_KEY": "sk-sandbox-local-only",
        "OPENAI_BASE_URL": urls["openai"],
        "OPENAI_MODEL": os.environ.get("OPENAI_MODEL", "gpt-5"),
        "OPENAI_MODELS": os.environ.get("OPENAI_MODELS", SANDBOX_MODELS),
        "GITHUB_CLIENT_ID": SANDBOX_GITHUB_CLIENT_ID,
        "GITHUB_CLIENT_SECRET": SANDBOX_GITHUB_CLIENT_SECRET,
        "GITHUB_URL": urls["github"],
        "STRIPE_SECRET_KEY": "sk_test_sandbox_local_only",
        "STRIPE_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET,
        "STRIPE_API_BASE": urls["stripe"],
        "STRIPE_PRICE_BASIC": "price_basic",
        "STRIPE_PRICE_PRO": "price_pro",
    }


def run(port: int, host: str, latency_ms: int) -> None:
    from dotenv import load_dotenv

    load_dotenv(ROOT / ".env")
    emulators = None
    if not any(os.environ.get(key) for key in PROVIDER_KEYS):
        emulators, urls = start_emulators(port, latency_ms)
        atexit.register(emulators.terminate)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        os.environ.update(sandbox_environment(urls))
        print(f" * Sandbox mode: emulators at {', '.join(f'{k} {v}' for k, v in urls.items())}", flush=True)
    os.environ.setdefault("PUBLIC_URL", f"http://localhost:{port}")

    from flask_migrate import upgrade

    from app import create_app
    from app.runtime import jobs, lifecycle

    app = create_app()
    with app.app_context():
        upgrade()
    if not app.extensions["sorya.config"].REDIS_URL:
        # One process, no worker: the sweeps (expired holds, stale replies, unused blobs) run here.
        jobs.start_periodic_thread(app)
    print(f" * Sorya is running on http://localhost:{port}  (Ctrl+C to stop)", flush=True)
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        # Ctrl+C or SIGTERM: replies still generating end cleanly (holds released) before the exit.
        lifecycle.begin_shutdown(app, app.extensions["sorya.config"].SHUTDOWN_GRACE_S)
        if emulators is not None:
            emulators.terminate()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="migrate and serve the app (with emulators when no keys)")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 5000)))
    run_parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run_parser.add_argument("--latency-ms", type=int, default=20,
                            help="delay between streamed chunks, so replies visibly stream")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.port, args.host, args.latency_ms)


if __name__ == "__main__":
    main()
