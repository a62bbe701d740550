"""Which work of a web process goes first when its CPU is short: the page a person is waiting for.

A page view or an API read is all-or-nothing for the person waiting on it, and takes milliseconds.
Starting a reply (a send) or ending one (its ledger transaction) is work whose few extra milliseconds
nobody sees: the reply then streams for seconds anyway. So sends and reply ends, already admitted a
few at a time per process, also wait for a moment when no page of this process is being handled, up
to `YIELD_TO_PAGES_MAX_S`, so a burst of them never starves pages and pages never starve them.

`register_admission(app)` (called by `create_app`) installs the request hooks: a send route
(`SEND_ENDPOINTS`) takes one of this process's `MAX_CONCURRENT_SENDS` send slots before anything else;
every other request counts as a page view while its view runs.
"""

from __future__ import annotations

import threading
import time

from flask import Flask, Response, g, request

from app.errors import Unavailable
from app.extensions import db

# The longest a send or a reply's end waits for the process's page views to clear.
YIELD_TO_PAGES_MAX_S = 0.05


class InteractiveRequests:
    """The page views and API reads this process is handling (not counting a streamed body)."""

    def __init__(self) -> None:
        self._count = 0
        # Created at import, in the worker after gevent patched `threading`.
        self._quiet = threading.Condition()

    def enter(self) -> None:
        with self._quiet:
            self._count += 1

    def leave(self) -> None:
        with self._quiet:
            self._count -= 1
            if self._count <= 0:
                self._count = 0
                self._quiet.notify_all()

    @property
    def count(self) -> int:
        return self._count

    def wait_quiet(self, max_wait_s: float = YIELD_TO_PAGES_MAX_S) -> float:
        """Wait until none is in progress, at most `max_wait_s`; returns the seconds waited."""
        started = time.monotonic()
        with self._quiet:
            self._quiet.wait_for(lambda: self._count == 0, timeout=max_wait_s)
        return time.monotonic() - started


INTERACTIVE = InteractiveRequests()


# -- send slots ------------------------------------------------------------------------------------
# At most this many sends of this process are handled at once; the others queue (first come, first
# served) before anything else, even loading the signed-in user. Under a burst, the first sends then
# finish, and their replies start, in a few milliseconds each, instead of all of them advancing in step
# through their dozen round trips and starting together at the end of the burst; and the queued ones
# neither hold nor wait for the database connections that page views need.
MAX_CONCURRENT_SENDS = 4
SEND_QUEUE_TIMEOUT_S = 20.0
SEND_ENDPOINTS = frozenset({"api.api_send", "chat.send_general", "chat.send_project"})
# Created at import, in the worker after gevent patched `threading` (as the generation registry's locks).
_send_slots = threading.BoundedSemaphore(MAX_CONCURRENT_SENDS)


def admit_send() -> None:
    """Take one of this process's send slots for this request; released once its reply has started."""
    if g.get("send_slot"):
        return
    if not _send_slots.acquire(blocking=False):
        # Wait without a database connection (one may already be open, e.g. the one that loaded the user).
        db.session.rollback()
        if not _send_slots.acquire(timeout=SEND_QUEUE_TIMEOUT_S):
            raise Unavailable("Sorya is very busy right now; please send your message again in a moment.")
    g.send_slot = True
    _leave_interactive()  # a request that turns out to send is no page view to wait for
    INTERACTIVE.wait_quiet()  # then lets the process's page views go first


def release_send_slot(_error: BaseException | None = None) -> None:
    if g.pop("send_slot", False):
        _send_slots.release()


def _leave_interactive() -> None:
    if g.pop("interactive", False):
        INTERACTIVE.leave()


def _admit_sends_first() -> None:
    if request.method == "POST" and request.endpoint in SEND_ENDPOINTS:
        admit_send()
    else:
        INTERACTIVE.enter()
        g.interactive = True


def _interactive_handled(response: Response) -> Response:
    # Counted until the view has answered; a streamed body (a reply, a zip) is not waited for.
    _leave_interactive()
    return response


def _release_request_slots(_error: BaseException | None = None) -> None:
    # A send that never reached its reply's start (refused input, rate limit, an error) frees its slot
    # here; a request that failed before its response leaves the interactive count here.
    release_send_slot()
    _leave_interactive()


def register_admission(app: Flask) -> None:
    """Admit every request of `app`: sends through the send slots, the rest counted as page views."""
    app.before_request(_admit_sends_first)
    app.after_request(_interactive_handled)
    app.teardown_request(_release_request_slots)
