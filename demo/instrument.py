"""Per-request evidence for the report: database queries run and cached regions computed.

``DemoInstrumentMiddleware`` counts the SQL statements each request executes (an execute wrapper
on the request thread's connections) and how many cached regions had to run their code
(:func:`mark_computed`, called from inside every cached function, view and fragment of the blog).
It returns both in response headers, ``X-Demo-Queries`` and ``X-Demo-Computed``, so the load
runner measures hits and queries from outside, per request, whatever process served it. A request
to a cached view that computed nothing was answered from the cache: that is a hit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.http import HttpRequest, HttpResponse

__all__ = ["DemoInstrumentMiddleware", "count_queries", "mark_computed"]


@dataclass
class _Tally:
    queries: int = 0
    computed: int = 0


_tally: ContextVar[_Tally | None] = ContextVar("cachewise_demo_tally", default=None)


def mark_computed() -> None:
    """Record that a cached region ran its code in this request (a miss, or no cache at all)."""
    tally = _tally.get()
    if tally is not None:
        tally.computed += 1


def _current_queries() -> int:
    tally = _tally.get()
    return tally.queries if tally is not None else 0


@contextlib.contextmanager
def count_queries() -> Iterator[Callable[[], int]]:
    """Yield a function returning how many queries ran inside the block (this request only)."""
    start = _current_queries()
    yield lambda: _current_queries() - start


def _counting_wrapper(tally: _Tally) -> Callable[..., Any]:
    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        tally.queries += 1
        return execute(sql, params, many, context)

    return wrapper


class DemoInstrumentMiddleware:
    """Outermost middleware: count this request's queries and computes, report them in headers."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tally = _Tally()
        token = _tally.set(tally)
        try:
            with contextlib.ExitStack() as stack:
                # Connections are per thread, so this counts only this request's statements.
                for connection in connections.all(initialized_only=False):
                    stack.enter_context(connection.execute_wrapper(_counting_wrapper(tally)))
                response = self.get_response(request)
        finally:
            _tally.reset(token)
        response["X-Demo-Queries"] = str(tally.queries)
        response["X-Demo-Computed"] = str(tally.computed)
        response["X-Demo-Worker"] = str(os.getpid())
        return response
