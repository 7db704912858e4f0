"""Misuses of the public API that mypy must refuse: read by test_typing.py, never run.

Each line ending in ``# E: <code>`` must draw exactly that mypy error and no other line may draw
one; ``# N: <text>`` lines must draw a note containing the text (``reveal_type``). Excluded
from ``make typecheck`` (pyproject's mypy ``exclude``), which would otherwise fail on purpose.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import reveal_type  # a builtin for mypy; named for ruff (typing's is 3.11+)

from cachewise import Namespace, aget_or_compute, cached, get_or_compute
from cachewise.decorators import cache_page


@cached(ttl=600)
def featured(limit: int = 10, *, lang: str = "en") -> list[dict[str, Any]]:
    return []


@cached(ttl=60)
async def afeatured(limit: int = 10) -> list[int]:
    return []


class Shop:
    @cached(ttl=60)
    def price(self, item: str) -> int:
        return len(item)


reveal_type(featured)  # N: CachedFunction[[limit: int =, *, lang: str =], list[dict[str, Any]]]
reveal_type(afeatured)  # N: AsyncCachedFunction[[limit: int =], list[int]]
reveal_type(Shop().price)  # N: def (item: str) -> int

featured(limit="five")  # E: arg-type
featured("five")  # E: arg-type
featured(5, "de")  # E: call-arg
featured(5, language="de")  # E: call-arg
featured.invalidate(limit="five")  # E: arg-type
featured.refresh(lang=2)  # E: arg-type
featured.key(1, 2)  # E: call-arg, arg-type
title: str = featured(3)  # E: assignment
numbers: list[int] = afeatured(3)  # E: assignment
Shop().price(3)  # E: arg-type

get_or_compute("k", lambda: 1, 60, stampede="dogpile")  # E: call-overload
get_or_compute("k", [1, 2, 3], 60)  # E: call-overload
count: str = get_or_compute("k", lambda: 1, 60)  # E: assignment
cached(ttl=60, stampede="herd")  # E: arg-type
cache_page(60, stampede="herd")  # E: arg-type
Namespace("category").get_or_compute(1, compute=lambda: 1, ttl=60, stampede="x")  # E: call-overload


def word() -> str:
    return "s"


async def wrong_async() -> int:
    total: int = await aget_or_compute("k", word, 60)  # E: arg-type
    await featured(3)  # E: misc
    return total
