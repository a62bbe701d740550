"""Real servers and processes for the tests that need them: gunicorn with the production config, the RQ
worker, and the environment that makes a subprocess see the same database, Redis and secrets as the
test app.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from config import Config

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_environment(config: Config, **overrides: Any) -> dict[str, str]:
    """The environment of a process that must behave as the test app: same DB, Redis, secrets, providers.

    Built from a clean base (PATH and the like), never from the developer's .env: dotenv does not
    override variables that are set, so every setting the config has is passed, empty or not.
    """
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}
    settings: dict[str, Any] = {
        "SECRET_KEY": config.SECRET_KEY,
        "ENCRYPTION_KEY": config.ENCRYPTION_KEY,
        "ENCRYPTION_OLD_KEYS": ",".join(config.ENCRYPTION_OLD_KEYS),
        "DATABASE_URL": config.DATABASE_URL,
        "REDIS_URL": config.REDIS_URL,
        "PUBLIC_URL": config.PUBLIC_URL,
        "OPENAI_API_KEY": config.OPENAI_API_KEY,
        "OPENAI_BASE_URL": config.OPENAI_BASE_URL,
        "OPENAI_MODEL": config.OPENAI_MODEL,
        "OPENAI_MODELS": ",".join(config.OPENAI_MODELS),
        "GITHUB_CLIENT_ID": config.GITHUB_CLIENT_ID,
        "GITHUB_CLIENT_SECRET": config.GITHUB_CLIENT_SECRET,
        "GITHUB_URL": config.GITHUB_URL,
        "STRIPE_SECRET_KEY": config.STRIPE_SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": config.STRIPE_WEBHOOK_SECRET,
        "STRIPE_API_BASE": config.STRIPE_API_BASE,
        "STRIPE_PRICE_BASIC": config.STRIPE_PRICE_BASIC,
        "STRIPE_PRICE_PRO": config.STRIPE_PRICE_PRO,
        "SORYA_INSTANCE_DIR": config.INSTANCE_DIR,
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    settings.update(overrides)
    env.update({key: str(value) for key, value in settings.items() if value is not None})
    return env


def flask_command(*args: str) -> list[str]:
    return [str(VENV_BIN / "flask"), "--app", "wsgi", *args]


class Gunicorn:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on a free port, as deploy/ runs it; logs to a file."""

    def __init__(self, env: dict[str, str], *, port: int | None = None, **settings: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env, BIND=f"127.0.0.1:{self.port}", **settings)
        self.log_path = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30) -> Gunicorn:
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout_s}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 40) -> int | None:
        """SIGTERM (graceful, as systemd stops it), then SIGKILL if it hangs; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(5)
        finally:
            self.log_file.close()

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ThreadedServer:
    """The test app served by Werkzeug's threaded server on a free port, in a thread of this process."""

    def __init__(self, app) -> None:
        import threading

        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
