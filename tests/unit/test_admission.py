"""Pages first: sends and reply ends wait, a bounded moment, for the process's page views to clear.

Asserted by order and counts, never by how fast a machine runs: a wrong wait shows as events out of order
(or, for a wait that never ends, as the per-test timeout).
"""

import threading
import time

from app.runtime.admission import InteractiveRequests

LONG_BOUND_S = 3600.0


def test_waiting_for_quiet_does_not_wait_when_no_page_is_in_progress():
    pages = InteractiveRequests()
    assert pages.wait_quiet(LONG_BOUND_S) < LONG_BOUND_S
    assert pages.count == 0


def test_a_waiter_resumes_only_after_the_last_page_is_done():
    pages = InteractiveRequests()
    pages.enter()
    pages.enter()
    order: list[str] = []
    waiter = threading.Thread(target=lambda: (pages.wait_quiet(LONG_BOUND_S), order.append("waiter resumed")))
    waiter.start()
    time.sleep(0.05)  # let the waiter block (were it early, it would still be caught by the order below)
    order.append("first page done")
    pages.leave()
    time.sleep(0.05)
    order.append("last page done")
    pages.leave()
    waiter.join()
    assert order == ["first page done", "last page done", "waiter resumed"]
    assert pages.count == 0


def test_the_wait_ends_at_its_bound_while_a_page_is_in_progress():
    pages = InteractiveRequests()
    pages.enter()
    waited = pages.wait_quiet(0.1)
    assert waited >= 0.09  # it did wait for the page, up to the bound, then gave up
    assert pages.count == 1  # the page is still in progress: the waiter went first anyway


def test_the_count_never_goes_below_zero():
    pages = InteractiveRequests()
    pages.leave()
    assert pages.count == 0
    pages.enter()
    assert pages.count == 1
