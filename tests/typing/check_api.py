"""What mypy sees of the public API: ``make typecheck`` checks these ``assert_type`` lines.

Never run, only type-checked (pytest collects ``test_*.py``). Each line states a promise of
the typed API; ``wrong_usage.py`` beside it holds the calls that must be refused.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from typing_extensions import assert_type  # typing.assert_type is Python 3.11+

from cachewise import Counter, Namespace, NoStore, aget_or_compute, cached, get_or_compute, increment_field
from cachewise.compute import AsyncCachedFunction, CachedFunction, StampedeMode
from cachewise.orm import cached_list
from tests.testapp.models import Article, PageViews

Row = dict[str, Any]
CounterId = int | str  # a counter's id type (cachewise's own alias moves with the package layout)


def top_authors() -> list[str]:
    return ["ann"]


def maybe_empty() -> list[str] | NoStore[list[str]]:
    return NoStore([])


def never_stored() -> NoStore[int]:
    return NoStore(0)


def untyped() -> Any:
    return 1


async def a_top_authors() -> list[str]:
    return ["ann"]


async def a_never_stored() -> NoStore[int]:
    return NoStore(0)


# get_or_compute: the type of what compute returns, NoStore unwrapped.
assert_type(get_or_compute("k", top_authors, 60), list[str])
assert_type(get_or_compute("k", maybe_empty, 60, stampede="xfetch", stale_ttl=5), list[str])
assert_type(get_or_compute("k", never_stored, 60), int)
assert_type(get_or_compute("k", untyped, None), Any)
assert_type(get_or_compute("k", lambda: 3.5, 60, stampede="none"), float)

mode: StampedeMode = "lock"
assert_type(get_or_compute("k", top_authors, 60, stampede=mode), list[str])


async def async_api() -> None:
    # aget_or_compute: awaits an async compute, takes a sync one as it is.
    assert_type(await aget_or_compute("k", a_top_authors, 60), list[str])
    assert_type(await aget_or_compute("k", a_never_stored, 60), int)
    assert_type(await aget_or_compute("k", top_authors, 60), list[str])
    assert_type(await aget_or_compute("k", never_stored, 60), int)

    assert_type(await afeatured(3), list[int])
    assert_type(afeatured(3), Coroutine[Any, Any, list[int]]).close()  # a coroutine until awaited
    assert_type(await afeatured.refresh(limit=3), list[int])
    assert_type(afeatured.key(3), str)
    assert_type(afeatured.invalidate(3), None)
    assert_type(await Shop().aprice("book"), int)


# @cached: the function keeps its parameters and result; its controls take the same arguments.
@cached(ttl=600, stampede="xfetch")
def featured(limit: int = 10, *, lang: str = "en") -> list[Row]:
    return []


# The exact signature (names, defaults) is what reveal_type shows: see test_typing.py.
as_callable: Callable[[int], list[Row]] = featured
controls: CachedFunction[..., list[Row]] = featured
assert_type(featured(5), list[Row])
assert_type(featured(limit=5, lang="de"), list[Row])
assert_type(featured.refresh(5), list[Row])
assert_type(featured.key(5, lang="de"), str)
assert_type(featured.invalidate(), None)
original: Callable[..., list[Row] | NoStore[list[Row]]] = featured.original


@cached(ttl=600, unless=lambda rows: not rows)
def search(query: str) -> list[str] | NoStore[list[str]]:
    return NoStore([]) if not query else [query]


assert_type(search("q"), list[str])


@cached(ttl=60)
async def afeatured(limit: int = 10) -> list[int]:
    return []


async_controls: AsyncCachedFunction[..., list[int]] = afeatured
as_coroutine_function: Callable[[int], Coroutine[Any, Any, list[int]]] = afeatured


class Shop:
    @cached(ttl=60)
    def price(self, item: str) -> int:
        return len(item)

    @cached(ttl=60)
    async def aprice(self, item: str) -> int:
        return len(item)


assert_type(Shop().price("book"), int)
unbound: CachedFunction[..., int] = Shop.price  # accessed on the class: the cache controls
bound: Callable[[str], int] = Shop().price  # on an instance: a method without self

# Namespace.get_or_compute: as get_or_compute, under the scope's current version.
category = Namespace("category")
assert_type(category.get_or_compute(3, "top", compute=top_authors, ttl=60, stampede="lock"), list[str])
assert_type(category.key(3, "top"), str)
assert_type(category.bump(3), int)

# Counters and the ORM.
views = Counter("article:views", ttl=86400)
assert_type(views.incr(42), int)
assert_type(views.get_many([1, 2]), dict[CounterId, int])
assert_type(increment_field(PageViews, "views"), Callable[[Any, int], None])
assert_type(views.flush(increment_field(PageViews, "views")), dict[CounterId, int])


def apply_views(page: int, delta: int) -> None: ...


views.flush(apply_views)  # an apply typed for int ids fits
assert_type(Article.cached.get(42), Row | None)
assert_type(Article.cached.get_many([1, 2]), dict[Any, Row])
assert_type(cached_list(Article.objects.filter(featured=True), ttl=600), list[Row])
