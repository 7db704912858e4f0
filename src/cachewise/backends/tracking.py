"""The near cache's invalidation feed: one tracking connection per near cache and process.

Redis' server-assisted client-side caching (``CLIENT TRACKING``) in broadcasting mode (``BCAST``)
tells a connection about every change to a key under the given prefix, whoever made it: a
write, a delete, an expiry, an eviction, a ``FLUSHDB`` (a ``None`` key list: "everything"). The
tracker opens a dedicated RESP2 connection, enables tracking on it with ``REDIRECT`` to itself and
subscribes it to ``__redis__:invalidate``, so invalidations arrive as ordinary pub/sub messages
on a socket nobody else uses.

Who reads the socket: a daemon thread per process blocks in ``poll()`` on it (it never holds the
GIL or a lock while waiting, so it blocks neither request threads nor an event loop), and every
near-cache read first drains whatever already arrived (one ``poll(0)`` syscall, ~1 us, when
nothing did). The second path is what makes the promise independent of thread scheduling: Redis
sends the invalidation before the writer's reply, so once a writer's ``set()`` returned, the
message is in this process' socket buffer and the next read here applies it before answering.

Liveness: the thread sends ``PING`` every ``heartbeat`` seconds; a tracker whose last pong is
older than ``3 * heartbeat + 1`` seconds, whose connection failed, or that is reconnecting is not
:meth:`~Tracker.ready`, and the near cache empties itself before it serves again
(``on_lost``). After ``fork()`` a child never touches the parent's socket or thread: it
forgets them (closing only its own copy of the descriptor) and starts its own on first use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Tracker"]

logger = logging.getLogger("cachewise.near")

CHANNEL = b"__redis__:invalidate"
#: How long the reader thread sleeps between attempts to reconnect (doubling up to the max).
RECONNECT_MIN, RECONNECT_MAX = 0.05, 2.0

_TRACKERS: weakref.WeakSet[Tracker] = weakref.WeakSet()


class Tracker:
    """A tracking connection, its reader thread and its liveness (see the module docstring).

    ``connect()`` returns a new, unconnected redis-py ``Connection`` (RESP2). ``on_message(keys)``
    gets each invalidation (a list of keys, ``None`` for "every key"), ``on_lost()`` is called
    whenever invalidations may have been missed (connection lost, heartbeat late), and
    ``on_ready()`` once tracking is (again) in force; all three are called without the I/O lock's
    callers depending on their order beyond: ``on_lost`` before ``ready`` turns true again.
    """

    def __init__(
        self,
        name: str,
        connect: Callable[[], Any],
        prefix: str,
        heartbeat: float,
        on_message: Callable[[list[bytes] | None], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.name = name
        self._connect = connect
        self.prefix = prefix
        self.heartbeat = heartbeat
        self._stale_after = 3 * heartbeat + 1.0
        self._on_message = on_message
        self._on_lost = on_lost
        self._reset_process_state()
        _TRACKERS.add(self)

    def _reset_process_state(self) -> None:
        self._io_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._polls = threading.local()  # each thread's poll object for the read path
        self._conn: Any = None
        self._poller: Any = None  # the reader thread's (a poll object is not shared between threads)
        self._fd = -1
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._ready = False
        self._last_pong = 0.0
        self._last_ping = 0.0
        self.connects = 0  # connections established in this process (tests, stats)

    # -- the read path ---------------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether tracking is in force right now, after applying what already arrived."""
        if not self._ready:
            self._ensure_thread()
            return False
        fd = self._fd
        # Drain when bytes wait in the socket, and also while another thread is draining: it may
        # have taken the bytes of the invalidation we must see out of the socket already, and not
        # applied it yet (its drain holds the I/O lock until every message it read is applied).
        if self._io_lock.locked() or (fd >= 0 and self._waiting(fd)):
            self._drain()
        return self._still_ready()

    def _waiting(self, fd: int) -> bool:
        """Whether ``fd`` has input (or was closed), without blocking: ``poll(0)`` on this
        thread's own poll object (poll objects are not shared between threads), half the cost
        of a ``select()`` building its sets on every hit."""
        local = self._polls
        if getattr(local, "fd", -1) != fd:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            local.poller, local.fd = poller, fd
        return bool(local.poller.poll(0))

    def _still_ready(self) -> bool:
        """After a drain: not lost, and the heartbeat answered recently."""
        if not self._ready:
            return False
        if time.monotonic() - self._last_pong > self._stale_after:
            self._lose("heartbeat late")
            return False
        return True

    def wait_ready(self, timeout: float) -> bool:
        """Block up to ``timeout`` s until tracking is in force (tests, warm-up)."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def _drain(self) -> None:
        """Apply every message already received (never waits for one that has not come)."""
        with self._io_lock:
            conn = self._conn
            if conn is None or not self._ready:
                return
            try:
                while conn.can_read(timeout=0):
                    self._dispatch(conn.read_response())
            except Exception as exc:  # noqa: BLE001 - connection lost or protocol error: nothing can be trusted
                self._lose(f"tracking connection failed: {exc!r}")

    def _dispatch(self, message: Any) -> None:
        kind = message[0] if isinstance(message, list) and message else None
        if kind == b"message" and message[1] == CHANNEL:
            self._on_message(message[2])
        elif kind == b"pong":
            self._last_pong = time.monotonic()

    def _lose(self, reason: str) -> None:
        """Stop serving and empty the near cache; the reader thread reconnects."""
        was_ready, self._ready = self._ready, False
        self._on_lost(reason)
        if was_ready:
            logger.warning("near cache %s: %s; emptied, reconnecting", self.name, reason)

    # -- the reader thread -----------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"cachewise-near-{self.name}", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        me = self._thread
        delay = RECONNECT_MIN
        while self._thread is me and self._pid == os.getpid():
            if not self._ready:
                if self._establish():
                    delay = RECONNECT_MIN
                else:
                    time.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX)
                continue
            poller = self._poller
            try:
                events = poller.poll(self.heartbeat * 1000 / 2) if poller is not None else []
            except (OSError, ValueError):  # the descriptor went away under us
                events = []
            if events:
                self._drain()
            self._maybe_ping()

    def _maybe_ping(self) -> None:
        now = time.monotonic()
        if not self._ready or now - self._last_ping < self.heartbeat:
            return
        with self._io_lock:
            if self._conn is None or not self._ready:
                return
            try:
                self._conn.send_command("PING")
                self._last_ping = now
            except Exception as exc:  # noqa: BLE001 - the tracking thread must not die: the near cache is dropped
                self._lose(f"heartbeat failed: {exc!r}")
        if self._ready and now - self._last_pong > self._stale_after:
            self._lose("heartbeat late")

    def _establish(self) -> bool:
        """Open a connection, switch tracking on, subscribe; then (and only then) serve."""
        self._close()
        try:
            conn = self._connect()
            conn.connect()
            conn.send_command("CLIENT", "ID")
            client_id = conn.read_response()
            args = ["CLIENT", "TRACKING", "on", "REDIRECT", client_id, "BCAST"]
            if self.prefix:
                args += ["PREFIX", self.prefix]
            conn.send_command(*args)
            conn.read_response()
            conn.send_command("SUBSCRIBE", CHANNEL)
            conn.read_response()
        except Exception as exc:  # noqa: BLE001 - without tracking the near cache stays off; the thread goes on
            logger.debug("near cache %s: cannot establish tracking: %r", self.name, exc)
            return False
        poller = select.poll()
        poller.register(conn._sock.fileno(), select.POLLIN | select.POLLPRI)
        with self._io_lock:
            self._conn, self._poller, self._fd = conn, poller, conn._sock.fileno()
            # Invalidations sent before tracking was on are lost for good: empty, then serve.
            self._on_lost("tracking (re)established")
            self._last_pong = self._last_ping = time.monotonic()
            self.connects += 1
            self._ready = True
        return True

    def _close(self) -> None:
        with self._io_lock:
            conn, self._conn, self._poller, self._fd = self._conn, None, None, -1
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to release
                conn.disconnect()

    def stop(self) -> None:
        """Stop the reader thread and close the connection (tests; a process that exits need not)."""
        self._thread = None
        self._ready = False
        self._close()

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's socket without shutting it down, and its thread."""
        conn = self._conn
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # our copy of the descriptor: the parent keeps its socket
                os.close(sock.detach())
            conn._sock = None
        self._reset_process_state()


def _after_fork_in_child() -> None:
    for tracker in list(_TRACKERS):
        tracker._forget_after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
