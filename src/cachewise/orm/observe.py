"""Who watches reads of cached ORM data: the page being rendered, if any.

A ``CachedRows`` or ``cached_list`` hit runs no query, so a cached page rendered from it would not
see the tables behind it (see :mod:`cachewise.pagecache.tracking`). Each read therefore reports
the counters it was served under, with their values, to the watcher set in this context. The
watcher lives here, not in the page cache, so that imports keep pointing from the web layer to
the ORM layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token

__all__ = ["Watcher", "reported", "unwatch", "watch"]

#: ``(alias, counter keys, their values)``: the counters one read was served under.
Watcher = Callable[[str, Sequence[str], Sequence[int]], None]

_watcher: ContextVar[Watcher | None] = ContextVar("cachewise_orm_watcher", default=None)


def watch(watcher: Watcher) -> Token[Watcher | None]:
    """Send this context's reads to ``watcher`` until :func:`unwatch`."""
    return _watcher.set(watcher)


def unwatch(token: Token[Watcher | None]) -> None:
    """Stop watching (always, in a ``finally``)."""
    _watcher.reset(token)


def reported(alias: str, keys: Sequence[str], versions: Sequence[int] | None) -> None:
    """Report a read served under ``keys`` holding ``versions`` (nothing when they are unknown)."""
    watcher = _watcher.get()
    if watcher is not None and versions is not None:
        watcher(alias, keys, versions)
