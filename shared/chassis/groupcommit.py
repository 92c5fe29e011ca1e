"""Group commit: concurrent saves share one transaction, as PostgreSQL's group commit does.

Each caller queues its aggregates' new events and waits for the commit lock. Whoever holds the
lock saves every queued item in one transaction, so while one transaction is in flight the next
batch gathers. If a batch fails (a version conflict on one report), its items are saved one by
one so that each caller gets its own result and only the conflicting caller retries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


class _Pending:
    __slots__ = ("objs", "done", "error", "result")

    def __init__(self, objs: Sequence[Any]) -> None:
        self.objs = objs
        self.done = False
        self.error: BaseException | None = None
        self.result: Any = None


class GroupCommit:
    def __init__(self, save: Callable[..., Any], max_batch: int = 200) -> None:
        self._save = save
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self.batches = 0
        self.items = 0

    def save(self, *objs: Any) -> Any:
        """Save the aggregates' pending events (in a shared transaction); raise what the save
        raised for these events (a version conflict: reload and retry)."""
        # Collect once: a failed batch save must be able to retry the very same events alone.
        events = [event for obj in objs for event in obj.collect_events()]
        item = _Pending(events)
        with self._queue_lock:
            self._queue.append(item)
        while not item.done:
            with self._commit_lock:
                if item.done:
                    break
                with self._queue_lock:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                self._commit(batch)
        if item.error is not None:
            raise item.error
        return item.result

    def _commit(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        self.batches += 1
        self.items += len(batch)
        if len(batch) == 1:
            self._commit_one(batch[0])
            return
        try:
            result = self._save(*[obj for item in batch for obj in item.objs])
        except Exception:
            for item in batch:
                self._commit_one(item)
        else:
            for item in batch:
                item.result = result
                item.done = True

    def _commit_one(self, item: _Pending) -> None:
        try:
            item.result = self._save(*item.objs)
        except Exception as exc:  # handed to the caller, who decides (retry on conflict)
            item.error = exc
        item.done = True
