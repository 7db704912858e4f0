"""Notice, per request, that the cache degraded while serving it (to say ``cache-unavailable``).

The fill (:func:`cachewise.compute.api.get_or_compute`) fails open by itself: with Redis down it
renders and returns, and nothing is raised for the page cache to see. The backend's failure
policy announces every degraded operation with the ``cache_degraded`` signal; a receiver marks
the request being served, so its response can say ``bypass; reason=cache-unavailable`` instead
of a plain ``miss``. The mark is a mutable object in a context variable: the async fill runs in
a copy of the request's context on a worker thread, and both see the same object.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from cachewise.signals import cache_degraded

__all__ = ["Outage", "unwatch", "watch"]


class Outage:
    """Whether the cache degraded during one request."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False


_current: ContextVar[Outage | None] = ContextVar("cachewise_page_outage", default=None)


def _on_degraded(sender: Any, **kwargs: Any) -> None:
    outage = _current.get()
    if outage is not None:
        outage.seen = True


cache_degraded.connect(_on_degraded, dispatch_uid="cachewise.pagecache.outage", weak=False)


def watch() -> tuple[Outage, Token[Outage | None]]:
    """Start watching for degradation in this context; pass the token to :func:`unwatch`."""
    outage = Outage()
    return outage, _current.set(outage)


def unwatch(token: Token[Outage | None]) -> None:
    """Stop watching (always, in a ``finally``: a context outlives the request on its thread)."""
    _current.reset(token)
