"""Which work of a web process goes first when its CPU is short: the page a person is waiting for.

A page view or an API read is all-or-nothing for the person waiting on it, and takes milliseconds.
Starting a reply (a send) or ending one (its ledger transaction) is work whose few extra milliseconds
nobody sees: the reply then streams for seconds anyway. So sends and reply ends, already admitted a
few at a time per process, also wait for a moment when no page of this process is being handled, up
to `YIELD_TO_PAGES_MAX_S`, so a burst of them never starves pages and pages never starve them.
"""

from __future__ import annotations

import threading
import time

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
