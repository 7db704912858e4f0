"""One pub/sub connection per process for every lock waiter, instead of one per waiter.

A waiter is woken when its lock's holder publishes on the lock key (``filled``, ``released``,
``invalidated``). Subscribing per waiter took one connection from the cache's bounded pool per
waiting thread: 60 waiters on distinct keys held all 50 connections, every other read then
waited for the pool, and the breaker opened on a healthy server.

:class:`SharedSubscriber` keeps ONE pub/sub connection (taken from the pool while anybody waits,
given back a few seconds after the last waiter left) and ONE reader thread that hands each
message to the waiters of its channel. Channels are reference-counted: the first waiter of a
channel subscribes, the last one unsubscribes; the subscribe and unsubscribe commands are sent
under one lock, so the server sees them in the order the registry changed.

A subscription is confirmed before :meth:`SharedSubscriber.watch` returns: the caller re-reads
the item after that, and a notification published between that read and an unconfirmed
SUBSCRIBE would be lost. If the connection breaks, the reader wakes every waiter (they re-read
the item and wait again; a fill in the gap is seen by that read) and subscribes all live channels
on a new connection; a wake-up published while it reconnects may be missed, which costs that
waiter at most the holder's remaining lease.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

__all__ = ["SharedSubscriber", "Subscription"]

logger = logging.getLogger("cachewise.stampede")

#: The reader thread (and its connection) stops after this long without any waiter.
IDLE_SECONDS = 5.0
#: How long a waiter waits for its SUBSCRIBE to be confirmed before carrying on without it.
CONFIRM_SECONDS = 1.0


class Subscription:
    """One waiter's view of a channel: the notes published since it subscribed."""

    __slots__ = ("_event", "_notes", "channel")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._event = threading.Event()
        self._notes: list[str | None] = []

    def deliver(self, note: str | None) -> None:
        """Hand over a note (``None``: the connection broke, re-read and wait again)."""
        self._notes.append(note)
        self._event.set()

    def wait(self, timeout: float) -> str | None:
        """The next note, or None after ``timeout`` seconds (or when the connection broke)."""
        if not self._event.wait(timeout):
            return None
        self._event.clear()
        notes, self._notes = self._notes, []
        if len(notes) > 1:
            self._notes.extend(notes[1:])
            self._event.set()
        return notes[0] if notes else None


class _Channel:
    __slots__ = ("confirmed", "waiters")

    def __init__(self) -> None:
        self.confirmed = threading.Event()
        self.waiters: set[Subscription] = set()


class SharedSubscriber:
    """The pub/sub connection and reader thread shared by every waiter on ``client``."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None

    @property
    def connections(self) -> int:
        """Pub/sub connections this process holds for waiters right now (0 or 1)."""
        return 0 if self._pubsub is None else 1

    def join(self, channel: str) -> Subscription:
        """Subscribe to ``channel`` and wait (up to CONFIRM_SECONDS) for the confirmation.

        Raises redis-py's errors when the server cannot be reached; call :meth:`leave` after.
        """
        if self._pid != os.getpid():  # a fork: the parent's connection and thread are not ours
            self._reset()
        subscription = Subscription(channel)
        with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = self._channels[channel] = _Channel()
                try:
                    self._connection().subscribe(channel)
                except Exception:  # undo the registration, whatever failed (re-raised)
                    del self._channels[channel]
                    raise
            entry.waiters.add(subscription)
            self._start_reader()
        entry.confirmed.wait(CONFIRM_SECONDS)
        return subscription

    def leave(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription``; unsubscribe when it was the channel's last."""
        channel = subscription.channel
        with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                return
            entry.waiters.discard(subscription)
            if entry.waiters:
                return
            del self._channels[channel]
            if self._pubsub is not None:
                try:
                    self._pubsub.unsubscribe(channel)
                except Exception:  # the reader sees the broken connection and reconnects
                    logger.debug("unsubscribe from %s failed", channel, exc_info=True)

    def _connection(self) -> Any:
        """The shared PubSub (created under the lock on first need)."""
        if self._pubsub is None:
            self._pubsub = self.client.pubsub()
        return self._pubsub

    def _start_reader(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._read_loop, name="cachewise-lock-waits", daemon=True)
            self._thread.start()

    # The reader thread ---------------------------------------------------------------------------
    def _read_loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._lock:
                if self._channels:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= IDLE_SECONDS:
                    self._close_connection()
                    self._thread = None
                    return
                pubsub = self._pubsub
            if pubsub is None:
                time.sleep(0.05)
                continue
            try:
                message = pubsub.get_message(timeout=0.5)
            except Exception:  # noqa: BLE001 - the reader thread must not die: reconnect, waiters fall back to polling
                self._reconnect()
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in ("message", "subscribe"):
            return
        channel = _text(message["channel"])
        with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                return
            if kind == "subscribe":
                entry.confirmed.set()
                return
            waiters = list(entry.waiters)
        note = _text(message["data"])
        for waiter in waiters:
            waiter.deliver(note)

    def _reconnect(self) -> None:
        """Drop a broken connection, wake every waiter, subscribe the live channels again."""
        with self._lock:
            self._close_connection()
            waiters = [waiter for entry in self._channels.values() for waiter in entry.waiters]
        for waiter in waiters:
            waiter.deliver(None)
        time.sleep(0.1)  # a dead server: do not spin; waiters see the outage through their reads
        with self._lock:
            if not self._channels:
                return
            try:
                for channel, entry in self._channels.items():
                    entry.confirmed.clear()
                    self._connection().subscribe(channel)
            except Exception:  # noqa: BLE001 - the reader thread must not die: the next read reconnects
                self._close_connection()

    def _close_connection(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # a connection being dropped anyway: nothing to do but log
                logger.debug("closing the lock-wait connection failed", exc_info=True)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
