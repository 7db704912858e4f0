"""Page freshness: the version counters a cached page was rendered under, checked on every hit.

A stored page is wrapped as ``("cw.deps.1", deps, stamp, page)``: ``deps`` lists the counters the
page depends on as ``(alias, key)`` pairs and ``stamp`` their values *read before the render
queried anything* (see :mod:`cachewise.pagecache.tracking`). A hit is served only while every
counter still holds its stamped value. The counters are the ORM's (``gen`` of each table the
render read, row counters of ``depends_on`` instances, the global ORM epoch), ``Namespace``
versions, and the page's own *URL counters* that :mod:`cachewise.pagecache.purge` bumps:

* ``page:url:<path>`` and ``page:url:<host>:<path>``: :func:`~cachewise.invalidate_page`;
* ``page:prefix:<p>`` for ``/`` and every leading path segment ``p`` of the path, at most
  :data:`PREFIX_DEPTH` deep: ``invalidate --prefix``.

The page and its counters are read in ONE round trip (a plain ``MGET`` through
:func:`cachewise.orm.generations.peek`; a counter found missing is initialised above any old
value by :func:`~cachewise.orm.generations.read`, a second round trip): the URL counters are
derived from the request, the others from the dependency list this process saw for the same key
last time (a bounded memo). Only when the stored page names a
counter the memo did not (first hit of a page in a process, or a page whose data dependencies
changed) does the hit read those counters in a second round trip.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from cachewise.conf import conf
from cachewise.keys import make_key
from cachewise.orm import generations
from cachewise.pagecache.entry import POINTER_TAG
from cachewise.store.adapter import Entry, Held
from cachewise.store.choice import get_store
from cachewise.store.stamped import full_keys

from .key import NAMESPACE

if TYPE_CHECKING:
    from cachewise.backends.near import NearCache

__all__ = [
    "PREFIX_DEPTH",
    "Check",
    "Dep",
    "check",
    "establish_versions",
    "is_wrapped",
    "path_prefixes",
    "prefix_counter",
    "remember_view",
    "unwrap",
    "url_counter",
    "url_deps",
    "view_hint",
    "wrap",
]

TAG = "cw.deps.1"
#: Prefix counters cover the first this many path segments; a deeper ``--prefix`` purges its
#: ancestor at this depth (more than asked, never less).
PREFIX_DEPTH = 8

#: A dependency: the cache alias its counter lives in and the counter's key.
Dep = tuple[str, str]

_MEMO_SIZE = 4096
_hints: dict[str, tuple[Dep, ...]] = {}
_view_hints: dict[str, tuple[Dep, ...]] = {}  # per view (its budget key): for its misses
_hints_lock = threading.Lock()


def url_counter(path: str, host: str | None = None) -> str:
    """Key of the counter :func:`~cachewise.invalidate_page` bumps for ``path`` (on one host)."""
    return make_key(NAMESPACE, "url", path) if host is None else make_key(NAMESPACE, "url", host, path)


def prefix_counter(prefix: str) -> str:
    """Key of the counter that ``--prefix`` bumps for the normalised ``prefix`` (``/a/b``)."""
    return make_key(NAMESPACE, "prefix", prefix)


def path_prefixes(path: str) -> list[str]:
    """``/``, then ``/a``, ``/a/b``... for the leading segments of ``path`` (at most PREFIX_DEPTH)."""
    segments = [part for part in path.split("/") if part][:PREFIX_DEPTH]
    return ["/", *("/" + "/".join(segments[: i + 1]) for i in range(len(segments)))]


@functools.lru_cache(maxsize=4096)
def url_deps(alias: str, host: str, path: str) -> tuple[Dep, ...]:
    """The counters every page of ``host`` + ``path`` depends on (purges, the global epoch).

    Memoised (bounded): make_key() per segment would cost more than the rest of a hit.
    """
    keys = (
        url_counter(path),
        url_counter(path, host.lower()),
        *(prefix_counter(prefix) for prefix in path_prefixes(path)),
        generations.GLOBAL_EPOCH,
    )
    return tuple((alias, key) for key in keys)


def wrap(page: Any, deps: Sequence[Dep], stamp: Sequence[int]) -> tuple[Any, ...]:
    """The storable form of ``page`` rendered under counters ``deps`` holding ``stamp``."""
    return (TAG, tuple(tuple(dep) for dep in deps), tuple(stamp), page)


def is_wrapped(value: Any) -> bool:
    """True for a value made by :func:`wrap`."""
    return isinstance(value, tuple | list) and len(value) == 4 and value[0] == TAG


def unwrap(value: Any) -> Any:
    """The page inside a wrapped value; anything else as is (pointers are never wrapped)."""
    return value[3] if is_wrapped(value) else value


def _stamp_of(value: Any) -> dict[Dep, int] | None:
    try:
        pairs = zip(value[1], value[2], strict=True)
        return {(str(alias), str(key)): int(version) for (alias, key), version in pairs}
    except (TypeError, ValueError):
        return None


class Check(NamedTuple):
    """What one hit attempt learned.

    ``fresh``: ``value`` may be served. ``stale``: a page is stored but a counter moved (the
    caller must invalidate it before filling). ``known``: every counter read, with its value:
    versions read before any render that follows, so a fill may stamp the page with them.
    """

    value: Any
    fresh: bool
    stale: bool
    known: dict[Dep, int]
    #: The page's lock, taken by the read that found it missing (``check(lease=...)``).
    held: Held | None = None


def _read(
    alias: str, value_key: str | None, deps: Iterable[Dep], lease: float | None = None
) -> tuple[Any, dict[Dep, int], Held | None]:
    """The entry at ``value_key`` (or MISSING) and the counters ``deps``; one round trip per alias.
    With ``lease``, a missing entry's lock is taken in the same round trip (see :func:`check`)."""
    by_alias: dict[str, list[str]] = {alias: []}
    for dep_alias, key in deps:
        by_alias.setdefault(dep_alias, []).append(key)
    entry: Any = generations.MISSING
    known: dict[Dep, int] = {}
    held = None
    try:
        for dep_alias, keys in by_alias.items():  # the entry's alias first
            values = [value_key] if dep_alias == alias and value_key is not None else []
            found, counters, taken = _counters(dep_alias, values, keys, lease if values else None)
            if values:
                entry, held = found[0], taken
            pairs = zip([(dep_alias, key) for key in keys], counters, strict=True)
            known.update((dep, version) for dep, version in pairs if version is not None)
    except BaseException:
        if held is not None and value_key is not None:  # counters of another alias failed: no fill
            with contextlib.suppress(Exception):
                get_store(alias).release(value_key, held.token, note="nostore")
        raise
    return entry, known, held


def _counters(
    alias: str, values: list[str], keys: list[str], lease: float | None = None
) -> tuple[list[Any], list[int | None], Held | None]:
    # A plain MGET first (with the entry's lock when asked: one script): every counter exists on
    # all but the first read after a write to a table nobody read before, an eviction or a
    # restart; then the script initialises them.
    held = None
    peeked = None
    if lease is not None and len(values) == 1:
        folded = get_store(alias).peek_or_lock(values[0], keys, lease)
        if folded is not None:
            peeked, held = ([folded[0]], folded[1]), folded[2]
    if peeked is None:
        peeked = generations.peek(alias, values, keys)
    if peeked is not None and None not in peeked[1]:
        return peeked[0], peeked[1], held
    if peeked is not None and values and peeked[0][0] is generations.MISSING:
        # No page: leave missing counters missing (None). The fill establishes the ones it
        # needs before it renders (Tracker); doing it here would leave three keys behind for
        # every path anyone asks for, even when nothing is ever stored for it.
        return peeked[0], peeked[1], held
    # Only a present entry gets here, and a present entry is never locked by the read.
    found, counters = generations.read(alias, values, keys, conf.ORM_COUNTER_TTL)
    if counters is None:
        raise ConnectionError(f"the version counters of cache {alias!r} could not be read")
    return found, list[int | None](counters), None


def establish_versions(deps: Iterable[Dep]) -> dict[Dep, int]:
    """The value of each counter in ``deps``, known to be missing: initialised in one script call
    per alias (no ``MGET`` first, which would find them missing again)."""
    by_alias: dict[str, list[str]] = {}
    for dep_alias, key in deps:
        by_alias.setdefault(dep_alias, []).append(key)
    known: dict[Dep, int] = {}
    for dep_alias, keys in by_alias.items():
        _found, counters = generations.read(dep_alias, [], keys, conf.ORM_COUNTER_TTL)
        if counters is None:
            raise ConnectionError(f"the version counters of cache {dep_alias!r} could not be read")
        known.update(zip([(dep_alias, key) for key in keys], counters, strict=True))
    return known


def read_versions(deps: Iterable[Dep]) -> dict[Dep, int]:
    """The current value of each counter in ``deps`` (one round trip per alias)."""
    deps = list(deps)
    if not deps:
        return {}
    return _read(deps[0][0], None, deps)[1]


def check(
    alias: str, key: str, base: tuple[Dep, ...], view: tuple[Dep, ...] = (), lease: float | None = None
) -> Check:
    """Read the page at ``key`` with its counters: ``base`` (URL counters), the memo's and
    ``view`` (what the view's pages depended on lately: known before a miss renders).

    ``lease``: a missing page's lock is taken by the same read where the store can (one script
    on a single Redis server), for that many seconds; the caller then owns ``Check.held``.

    With a near cache on ``alias``, a fresh verdict is kept there and answered again while none
    of its entries changed (:meth:`~cachewise.backends.near.NearCache.recall`): the same answer
    as reading the page and its counters from process memory and comparing them again.
    """
    near: NearCache | None = get_store(alias).near
    since = 0
    if near is not None:
        known_fresh = near.recall(key)
        if known_fresh is not None:
            return cast(Check, known_fresh)
        since = near.mark()
    hinted = _hints.get(key, ())
    wanted = (*base, *hinted) if not view else tuple(dict.fromkeys((*base, *hinted, *view)))
    raw, known, held = _read(alias, key, wanted, lease)
    if raw is generations.MISSING:
        return Check(None, False, False, known, held)
    entry = Entry.from_wire(raw)
    value = entry.value
    if time.time() >= entry.soft_expiry:
        return Check(value, False, False, known)  # expired: get_or_compute decides (stale_ttl...)
    if not is_wrapped(value):
        # A vary pointer is fresh whatever the data; its variant carries the stamp.
        return Check(value, _is_pointer(value), not _is_pointer(value), known)
    stamp = _stamp_of(value)
    if stamp is None:
        return Check(value, False, True, known)
    missing = [dep for dep in stamp if dep not in known]
    if missing:
        known.update(read_versions(missing))
    extra = tuple(dep for dep in stamp if dep not in base)
    if extra != hinted:
        _remember(key, extra)
    fresh = all(known.get(dep) == version for dep, version in stamp.items())
    result = Check(value, fresh, not fresh, known)
    if fresh and near is not None and not missing:
        _keep_verdict(near, alias, key, wanted, since, result, entry.soft_expiry - time.time())
    return result


def _keep_verdict(
    near: NearCache, alias: str, key: str, wanted: tuple[Dep, ...], since: int, result: Check, ttl: float
) -> None:
    """Keep a fresh verdict in ``near`` when the page and every counter it read are held there
    (counters of another alias are read apart: their changes would not be seen)."""
    names = [key]
    for dep_alias, name in wanted:
        if dep_alias != alias:
            return
        names.append(name)
    if all(map(near.wants, names)):
        near.derive(key, full_keys(get_store(alias).cache, names), since, result, ttl)


def _is_pointer(value: Any) -> bool:
    return isinstance(value, tuple | list) and len(value) == 2 and value[0] == POINTER_TAG


def view_hint(view: str) -> tuple[Dep, ...]:
    """What the last fill of ``view`` depended on besides its URL counters (see ``check``)."""
    return _view_hints.get(view, ())


def remember_view(view: str, deps: tuple[Dep, ...]) -> None:
    """Note what a fill of ``view`` depended on: its next misses read those versions up front."""
    if _view_hints.get(view) != deps:
        with _hints_lock:
            if len(_view_hints) >= _MEMO_SIZE:
                _view_hints.clear()
            _view_hints[view] = deps


def _remember(key: str, deps: tuple[Dep, ...]) -> None:
    with _hints_lock:
        if len(_hints) >= _MEMO_SIZE:
            _hints.clear()  # bounded: a cleared memo costs one extra round trip per page
        _hints[key] = deps
