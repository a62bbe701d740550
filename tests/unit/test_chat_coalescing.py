"""The coalescing window: the base one for a lightly loaded process, longer (bounded) under load."""

from __future__ import annotations

from app.services import chat


def test_a_lightly_loaded_process_keeps_the_base_window():
    assert chat.coalesce_window_s(1) == chat.COALESCE_WINDOW_S
    assert chat.coalesce_window_s(chat.WINDOW_BASE_GENERATIONS) == chat.COALESCE_WINDOW_S


def test_the_window_grows_with_load_up_to_its_bound():
    busy = chat.coalesce_window_s(2 * chat.WINDOW_BASE_GENERATIONS)
    assert chat.COALESCE_WINDOW_S < busy < chat.COALESCE_WINDOW_MAX_S
    assert busy < chat.coalesce_window_s(3 * chat.WINDOW_BASE_GENERATIONS)
    assert chat.coalesce_window_s(10_000) == chat.COALESCE_WINDOW_MAX_S
