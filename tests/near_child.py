"""Process B of the near-cache tests: a spawned process that reads through its own near cache.

Nothing here imports Django at module level: the spawned child imports this module first, then
:func:`serve` configures Django with the caches it was given and answers commands sent over a
pipe until told to exit. Each answer is ``("ok", value)`` or ``("error", traceback)``.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from typing import Any


def _setup(database_url: str | None, caches: dict[str, Any]) -> None:
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.test import override_settings

    django.setup()
    override_settings(CACHES=caches).enable()


def _near() -> Any:
    from django.core.cache import caches

    cache: Any = caches["default"]
    return cache.near


def _row(pk: int) -> Any:
    """The cached row's title, or "<database>" when it had to query (SQLite children have no tables)."""
    from django.db import DatabaseError, connection

    from tests.testapp.models import Article

    try:
        row = Article.cached.get(pk)
    except DatabaseError:
        return "<database>"
    finally:
        connection.close()
    return None if row is None else row["title"]


def _command(name: str, args: tuple[Any, ...]) -> Any:  # noqa: PLR0911  (one answer per command)
    from django.core.cache import caches

    from cachewise import Namespace

    cache = caches["default"]
    if name == "ready":
        return _near().tracker.wait_ready(args[0])
    if name == "get":
        return cache.get(args[0])
    if name == "get_after":  # "you were told; read `delay` seconds later"
        time.sleep(args[1])
        return cache.get(args[0])
    if name == "held":
        return _near().lookup([cache.make_and_validate_key(args[0])]) is not None
    if name == "version":
        return Namespace(args[0]).version(args[1])
    if name == "row":
        return _row(args[0])
    if name == "stats":
        near = _near()
        return {"bytes": near.bytes, "entries": len(near._entries), "connects": near.tracker.connects}
    if name == "pid":
        return os.getpid()
    raise ValueError(f"unknown command {name!r}")


def serve(database_url: str | None, caches: dict[str, Any], conn: Any) -> None:
    """Entry point: set up Django, answer commands until ``exit`` (never returns)."""
    try:
        _setup(database_url, caches)
        conn.send(("ok", os.getpid()))
        while True:
            name, *args = conn.recv()
            if name == "exit":
                break
            try:
                conn.send(("ok", _command(name, tuple(args))))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except BaseException:
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))
    finally:
        os._exit(0)
