"""Pages first: sends and reply ends wait, a bounded moment, for the process's page views to clear."""

import threading
import time

from app.services.admission import InteractiveRequests


def test_waiting_for_quiet_returns_at_once_when_no_page_is_in_progress():
    pages = InteractiveRequests()
    assert pages.wait_quiet(5.0) < 0.5


def test_a_waiter_resumes_when_the_last_page_is_done():
    pages = InteractiveRequests()
    pages.enter()
    pages.enter()
    waited: list[float] = []
    waiter = threading.Thread(target=lambda: waited.append(pages.wait_quiet(5.0)))
    waiter.start()
    time.sleep(0.05)
    pages.leave()
    time.sleep(0.05)
    assert waiter.is_alive()  # one page still in progress
    pages.leave()
    waiter.join(2)
    assert not waiter.is_alive() and 0.08 <= waited[0] < 2.0


def test_the_wait_is_bounded_while_pages_keep_coming():
    pages = InteractiveRequests()
    pages.enter()
    assert 0.05 <= pages.wait_quiet(0.1) < 1.0
    assert pages.count == 1


def test_the_count_never_goes_below_zero():
    pages = InteractiveRequests()
    pages.leave()
    assert pages.count == 0
    pages.enter()
    assert pages.count == 1
