"""Small bounded thread pools that survive ``fork`` (Gunicorn preloads, then forks workers).

A :class:`ThreadPoolExecutor` created before a fork is broken in the child: its worker threads
do not exist there, yet it believes they do, so submitted work never runs. :class:`BoundedPool`
builds its executor lazily per process id, and bounds the work in flight so memory stays flat
when the pool falls behind (:meth:`try_submit` then says no and the caller runs the work itself).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["BoundedPool", "io_pool", "refresh_pool"]

logger = logging.getLogger("cachewise.background")


class BoundedPool:
    """``max_workers`` threads named ``name``, at most ``max_pending`` tasks queued or running."""

    def __init__(self, name: str, max_workers: int, max_pending: int) -> None:
        self.name = name
        self.max_workers = max_workers
        self.max_pending = max_pending
        self._pid = -1
        self._executor: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(max_pending)
        self._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        """This process' executor (created on first use after start-up or a fork)."""
        if self._pid != os.getpid() or self._executor is None:
            with self._lock:
                if self._pid != os.getpid() or self._executor is None:
                    self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix=self.name)
                    self._slots = threading.BoundedSemaphore(self.max_pending)
                    self._pid = os.getpid()
        return self._executor

    def try_submit(self, task: Callable[[], Any]) -> bool:
        """Run ``task`` on the pool and return True, or return False when the pool is full."""
        executor = self.executor()
        slots = self._slots
        if not slots.acquire(blocking=False):
            return False

        def run() -> None:
            try:
                task()
            except Exception:  # user code on a pool thread: log it, keep the thread and its slot
                logger.exception("cachewise background task failed")
            finally:
                slots.release()

        executor.submit(run)
        return True


def _after_fork_in_child() -> None:
    for pool in (refresh_pool, io_pool):
        pool._lock = threading.Lock()


#: Early (XFetch) and stale (stale_ttl) refreshes, so the caller that wins the refresh returns
#: the current value at once instead of waiting for the computation.
refresh_pool = BoundedPool("cachewise-refresh", max_workers=4, max_pending=64)
#: Cache I/O of the async API: waiting on a lock must not take asyncio's default executor.
io_pool = BoundedPool("cachewise-io", max_workers=32, max_pending=10_000)

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
