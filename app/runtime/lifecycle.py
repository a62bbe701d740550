"""Graceful shutdown: what a web process does between SIGTERM and exit.

When gunicorn (or the sandbox server) is asked to stop, `begin_shutdown(app, grace_s)` runs once:

1. `is_draining()` turns True. `/readyz` then answers 503, so a load balancer stops sending new
   requests here, and a service can refuse to start new long work (the chat service answers
   `Unavailable` to a new generation: the client retries on another process).
2. Every registered shutdown hook is called, in registration order, inside an app context, with a
   deadline (a `time.monotonic()` value). A hook lets its in-process work finish until the deadline,
   then ends what is left *cleanly*: for chat, stop the reply (charged for what it wrote) or mark it
   failed, release its credit hold, publish the stream's end event. Ending takes a moment, so a hook
   may return up to `ABORT_ALLOWANCE_S` after the deadline, never later; one that raises is logged and
   the next hook still runs.

Registering (the chat service does this at import time):

    from app.runtime import lifecycle

    @lifecycle.on_shutdown("chat generations")
    def finish_or_stop_generations(deadline: float) -> None:
        if not GENERATIONS.wait_idle(max(0.0, deadline - time.monotonic())):
            GENERATIONS.cancel_all()  # each ends as stopped, charged for its text, hold released
            GENERATIONS.wait_idle(lifecycle.ABORT_ALLOWANCE_S)

`grace_s` is `SHUTDOWN_GRACE_S` (default 20 s); gunicorn.conf.py keeps gunicorn's `graceful_timeout`
longer than it, so the worker is never killed while a hook is still releasing holds. Whatever a killed
process leaves behind (a power cut, SIGKILL) is caught later by the periodic sweeps: expired holds are
released and replies whose heartbeat stopped are marked failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

log = logging.getLogger(__name__)

ShutdownHook = Callable[[float], None]
# How long after its deadline a hook may still take to end what is left (gunicorn.conf.py keeps
# graceful_timeout at SHUTDOWN_GRACE_S + 10 s, so this fits with room to exit).
ABORT_ALLOWANCE_S = 5.0


@dataclass(frozen=True)
class RegisteredHook:
    name: str
    hook: ShutdownHook


_hooks: list[RegisteredHook] = []
_draining = threading.Event()
_shutdown_lock = threading.Lock()
_shutdown_done = threading.Event()


def register_shutdown_hook(name: str, hook: ShutdownHook) -> None:
    """Add a hook; registering the same name again replaces it (modules may be re-imported)."""
    _hooks[:] = [h for h in _hooks if h.name != name]
    _hooks.append(RegisteredHook(name, hook))


def on_shutdown(name: str) -> Callable[[ShutdownHook], ShutdownHook]:
    """Decorator form of `register_shutdown_hook`."""

    def decorate(hook: ShutdownHook) -> ShutdownHook:
        register_shutdown_hook(name, hook)
        return hook

    return decorate


def registered_hooks() -> list[str]:
    return [h.name for h in _hooks]


def is_draining() -> bool:
    """True once this process has been asked to stop: start no new long work."""
    return _draining.is_set()


def wait_until_shut_down(timeout_s: float) -> bool:
    """Block until the hooks of a shutdown already begun have returned (the worker's last act, so it
    does not exit while a hook is still releasing holds). True at once when no shutdown began."""
    if not _draining.is_set():
        return True
    return _shutdown_done.wait(timeout_s)


def begin_shutdown(app: Flask, grace_s: float) -> None:
    """Drain and run every hook within `grace_s` seconds. Runs once per process; later calls wait."""
    _draining.set()
    if not _shutdown_lock.acquire(blocking=False):
        _shutdown_done.wait(grace_s)
        return
    deadline = time.monotonic() + grace_s
    log.info("shutdown: draining, %d hook(s), grace %.0fs", len(_hooks), grace_s)
    try:
        for registered in list(_hooks):
            started = time.monotonic()
            try:
                with app.app_context():
                    registered.hook(deadline)
            except Exception:  # noqa: BLE001 - one failing hook must not stop the others
                log.exception("shutdown: hook %r failed", registered.name)
            log.info("shutdown: hook %r done in %.2fs", registered.name, time.monotonic() - started)
    finally:
        _shutdown_done.set()

