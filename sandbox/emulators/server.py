"""Run emulators on 127.0.0.1: in a background thread for tests, or in the foreground for the sandbox.

In a test::

    server = EmulatorServer(OpenAIEmulator(), GitHubEmulator(), StripeEmulator()).start()
    server.url                  # root of the first emulator, e.g. "http://127.0.0.1:40123"
    server.urls["github"]       # root of each emulator by name
    server.sdk_urls             # {"openai": ".../v1", "github": "...", "stripe": "..."}: the values
                                # of OPENAI_BASE_URL, GITHUB_URL and STRIPE_API_BASE
    server.stop()

Each emulator gets its own port (port 0 = ephemeral unless ``ports={"openai": 8101, ...}``); all share
one event loop in one daemon thread. The listen backlog is 2048 (the kernel may cap it at somaxconn)
so a burst of several hundred concurrent streams is not refused.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from aiohttp import web

from sandbox.emulators.base import Emulator

HOST = "127.0.0.1"
LISTEN_BACKLOG = 2048
SHUTDOWN_TIMEOUT_S = 1.0


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


async def start_emulators(emulators: list[Emulator], host: str = HOST,
                          ports: dict[str, int] | None = None) -> list[web.AppRunner]:
    """Bind and serve each emulator; sets ``emulator.base_url`` before the first request can arrive."""
    runners = []
    for emulator in emulators:
        sock = bind_socket(host, (ports or {}).get(emulator.name, 0))
        emulator.base_url = f"http://{host}:{sock.getsockname()[1]}"
        # handler_cancellation: a hung or streaming handler stops when its client disconnects.
        runner = web.AppRunner(emulator.build_app(), access_log=None, handler_cancellation=True,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=LISTEN_BACKLOG).start()
        await emulator.on_started()
        runners.append(runner)
    return runners


async def stop_emulators(emulators: list[Emulator], runners: list[web.AppRunner]) -> None:
    for emulator in emulators:
        await emulator.on_stopping()
    for runner in runners:
        await runner.cleanup()


def sdk_urls(emulators: list[Emulator]) -> dict[str, str]:
    return {e.name: e.base_url + e.sdk_path for e in emulators}


class EmulatorServer:
    """One or several emulators served from a background thread with its own event loop."""

    def __init__(self, *emulators: Emulator, host: str = HOST, ports: dict[str, int] | None = None):
        if not emulators:
            raise ValueError("EmulatorServer needs at least one emulator")
        self.emulators = list(emulators)
        self.host = host
        self.ports = ports
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []

    def start(self, timeout_s: float = 10.0) -> EmulatorServer:
        """Start serving; returns once every emulator is listening (typically in ~50 ms)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulators", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_emulators(self.emulators, self.host, self.ports), self._loop)
        self._runners = future.result(timeout_s)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(stop_emulators(self.emulators, self._runners), self._loop)
        try:
            future.result(timeout_s)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout_s)
            self._loop.close()
            self._loop = None

    def run_in_loop(self, coro: Any, timeout_s: float = 10.0) -> Any:
        """Run a coroutine on the server's loop (for tests that poke an emulator directly)."""
        assert self._loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    @property
    def url(self) -> str:
        return self.emulators[0].base_url

    @property
    def urls(self) -> dict[str, str]:
        return {e.name: e.base_url for e in self.emulators}

    @property
    def sdk_urls(self) -> dict[str, str]:
        return sdk_urls(self.emulators)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
