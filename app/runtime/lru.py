"""One bounded, least-recently-used map for the process's memos (rendered views, parsed manifests, token
look-ups): safe across threads and greenlets, bounded by a weight (1 per item unless `weigh` says more)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class BoundedLRU:
    """At most `capacity` in total weight; the least recently used items go first (the newest always stays)."""

    def __init__(self, capacity: int, weigh: Callable[[Any], int] = lambda value: 1) -> None:
        self.capacity = capacity
        self.weigh = weigh
        self.weight = 0
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            if key in self._items:
                self.weight -= self.weigh(self._items[key])
            self._items[key] = value
            self._items.move_to_end(key)
            self.weight += self.weigh(value)
            while self.weight > self.capacity and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self.weight -= self.weigh(dropped)

    def pop(self, key: str) -> None:
        with self._lock:
            if key in self._items:
                self.weight -= self.weigh(self._items.pop(key))

    def discard_where(self, matches: Callable[[Any], bool]) -> None:
        with self._lock:
            for key in [k for k, value in self._items.items() if matches(value)]:
                self.weight -= self.weigh(self._items.pop(key))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.weight = 0

    def __len__(self) -> int:
        return len(self._items)
