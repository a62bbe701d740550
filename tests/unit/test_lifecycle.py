"""The shutdown hook registry: every hook runs once, in order, with a deadline, whatever the others do."""

import threading
import time

import pytest
from flask import Flask, current_app

from app.runtime import lifecycle


@pytest.fixture
def fresh_lifecycle(monkeypatch):
    monkeypatch.setattr(lifecycle, "_hooks", [])
    monkeypatch.setattr(lifecycle, "_draining", threading.Event())
    monkeypatch.setattr(lifecycle, "_shutdown_lock", threading.Lock())
    monkeypatch.setattr(lifecycle, "_shutdown_done", threading.Event())
    return lifecycle


def test_hooks_run_in_order_inside_an_app_context_with_the_deadline(fresh_lifecycle):
    app = Flask("hooks")
    calls = []

    @fresh_lifecycle.on_shutdown("first")
    def first(deadline):
        calls.append(("first", current_app.name, round(deadline - time.monotonic())))

    def broken(deadline):
        raise RuntimeError("boom")

    fresh_lifecycle.register_shutdown_hook("broken", broken)
    fresh_lifecycle.register_shutdown_hook("last", lambda deadline: calls.append(("last", fresh_lifecycle.is_draining())))

    assert not fresh_lifecycle.is_draining()
    fresh_lifecycle.begin_shutdown(app, 10)
    assert calls == [("first", "hooks", 10), ("last", True)]
    assert fresh_lifecycle.wait_until_shut_down(0)


def test_shutdown_runs_once_even_when_asked_twice(fresh_lifecycle):
    app = Flask("once")
    calls = []
    fresh_lifecycle.register_shutdown_hook("count", lambda deadline: calls.append(deadline))
    fresh_lifecycle.begin_shutdown(app, 1)
    fresh_lifecycle.begin_shutdown(app, 1)
    assert len(calls) == 1


def test_registering_a_name_again_replaces_the_hook(fresh_lifecycle):
    fresh_lifecycle.register_shutdown_hook("chat", lambda deadline: None)
    fresh_lifecycle.register_shutdown_hook("chat", lambda deadline: None)
    assert fresh_lifecycle.registered_hooks() == ["chat"]


def test_wait_until_shut_down_waits_for_a_slow_hook(fresh_lifecycle):
    app = Flask("slow")
    release = threading.Event()
    fresh_lifecycle.register_shutdown_hook("slow", lambda deadline: release.wait(5))
    worker = threading.Thread(target=fresh_lifecycle.begin_shutdown, args=(app, 5))
    worker.start()
    while not fresh_lifecycle.is_draining():
        time.sleep(0.01)
    assert fresh_lifecycle.wait_until_shut_down(0.05) is False
    release.set()
    assert fresh_lifecycle.wait_until_shut_down(5) is True
    worker.join()
