"""get_or_compute() and @cached: what a caller sees, on each store path."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings

from cachewise import NoStore, aget_or_compute, cached, get_or_compute, make_key, private_key
from cachewise.compute.api import StampedeMode, function_namespace, invalidate
from cachewise.embedded import EmbeddedRedis
from cachewise.monitoring.metrics import metrics
from cachewise.store.choice import get_store


class Counting:
    """A compute function that counts its calls."""

    def __init__(self, value: Any = "v", delay: float = 0.0) -> None:
        self.value, self.delay, self.calls = value, delay, 0
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return self.value


@pytest.mark.parametrize("mode", ["lock", "xfetch", "none"])
def test_computes_once_then_hits(backend: str, mode: StampedeMode) -> None:
    compute = Counting(["a", 1])
    key = make_key("articles", "top")
    assert get_or_compute(key, compute, 60, stampede=mode) == ["a", 1]
    assert get_or_compute(key, compute, 60, stampede=mode) == ["a", 1]
    assert compute.calls == 1


def test_none_is_cached(backend: str) -> None:
    compute = Counting(None)
    key = make_key("maybe")
    assert get_or_compute(key, compute, 60) is None
    assert get_or_compute(key, compute, 60) is None
    assert compute.calls == 1


def test_nostore_returns_the_value_without_caching_it(backend: str) -> None:
    calls = []

    def compute() -> NoStore[list[int]]:
        calls.append(1)
        return NoStore([])

    key = make_key("search", "q")
    assert get_or_compute(key, compute, 60) == []
    assert get_or_compute(key, compute, 60) == []
    assert len(calls) == 2


def test_value_instead_of_callable_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="must be a callable"):
        get_or_compute("k:v1", [1, 2, 3], 60)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"@cached\(ttl=600\)"):
        cached(lambda: 1)  # type: ignore[arg-type]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="stampede"):
        get_or_compute("k:v1", lambda: 1, 60, stampede="dogpile")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="ttl"):
        get_or_compute("k:v1", lambda: 1, -1)


def test_expired_value_is_recomputed(backend: str) -> None:
    compute = Counting("x")
    key = make_key("short")
    get_or_compute(key, compute, 0.2)
    time.sleep(0.3)
    get_or_compute(key, compute, 0.2)
    assert compute.calls == 2


def test_stale_if_error_serves_the_old_value_when_compute_raises(backend: str) -> None:
    key = make_key("fragile")
    assert get_or_compute(key, lambda: "good", 0.2, stale_if_error=30) == "good"
    time.sleep(0.3)

    def broken() -> str:
        raise RuntimeError("database down")

    assert get_or_compute(key, broken, 0.2, stale_if_error=30) == "good"
    with pytest.raises(RuntimeError):
        get_or_compute(make_key("never_cached"), broken, 0.2, stale_if_error=30)


def _eventually(fetch: Any, expected: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while fetch() != expected:
        assert time.monotonic() < deadline, f"never saw {expected!r}"
        time.sleep(0.02)


def test_stale_ttl_serves_old_value_while_one_caller_refreshes(backend: str) -> None:
    key = make_key("popular")
    get_or_compute(key, lambda: "old", 0.2, stale_ttl=30)
    time.sleep(0.3)
    store = get_store()
    token = store.acquire(key, 5)  # another worker is refreshing
    assert token is not None
    assert get_or_compute(key, lambda: "new", 0.2, stale_ttl=30) == "old"
    store.release(key, token)

    refreshes: list[float] = []

    def slow_new() -> str:
        refreshes.append(time.monotonic())
        time.sleep(0.3)
        return "new"

    started = time.monotonic()
    assert get_or_compute(key, slow_new, 0.2, stale_ttl=30) == "old", "the refresher serves the old value too"
    assert time.monotonic() - started < 0.25, "nobody waits for the refresh"
    _eventually(lambda: get_or_compute(key, slow_new, 0.2, stale_ttl=30), "new")
    assert len(refreshes) == 1


def test_stale_ttl_refreshes_in_place_when_background_refresh_is_off(backend: str) -> None:
    key = make_key("popular_inline")
    with override_settings(CACHEWISE_BACKGROUND_REFRESH=False):
        get_or_compute(key, lambda: "old", 0.2, stale_ttl=30)
        time.sleep(0.3)
        assert get_or_compute(key, lambda: "new", 0.2, stale_ttl=30) == "new"


def test_xfetch_refreshes_before_expiry(backend: str) -> None:
    key = make_key("hot")
    get_or_compute(key, Counting("first", delay=0.05), 30, stampede="xfetch")
    # With a huge beta, a measured compute time makes every read due for an early refresh.
    assert get_or_compute(key, lambda: "second", 30, stampede="xfetch", beta=1e6) == "first"
    _eventually(lambda: get_or_compute(key, lambda: "third", 30, stampede="xfetch"), "second")


def test_invalidate_drops_the_value(backend: str) -> None:
    key = make_key("inv")
    get_or_compute(key, lambda: 1, 60)
    invalidate(key)
    assert get_or_compute(key, lambda: 2, 60) == 2


def test_get_or_compute_value_readable_by_plain_delete(backend: str) -> None:
    key = make_key("plain")
    get_or_compute(key, lambda: 1, 60)
    cache.delete(key)
    assert get_or_compute(key, lambda: 2, 60) == 2


def test_metrics_count_hits_misses_and_recomputes(cachewise_caches: dict[str, Any]) -> None:
    metrics.reset()
    key = make_key("metered")
    get_or_compute(key, lambda: 1, 60)
    get_or_compute(key, lambda: 1, 60)
    snap = metrics.snapshot()
    assert snap[("miss", "default", "metered")] == 1
    assert snap[("hit", "default", "metered")] == 1
    assert snap[("recompute", "default", "metered")] == 1


def test_dead_cache_computes_and_returns(disposable_redis: EmbeddedRedis) -> None:
    from cachewise import caches_from_url

    caches = caches_from_url(disposable_redis.url, key_prefix="dead", sessions=False)
    disposable_redis.kill()
    with override_settings(CACHES=caches):
        assert get_or_compute(make_key("k"), lambda: "computed", 60) == "computed"
        assert get_or_compute(make_key("k"), lambda: "again", 60, stampede="xfetch") == "again"


# @cached ---------------------------------------------------------------------------------------
calls: list[tuple[Any, ...]] = []


@cached(ttl=60)
def featured(limit: int = 10, *, lang: str = "en") -> list[int]:
    calls.append((limit, lang))
    return list(range(limit))


def test_cached_function_caches_per_arguments(backend: str) -> None:
    calls.clear()
    assert featured(3) == [0, 1, 2]
    assert featured(limit=3) == [0, 1, 2], "positional and keyword calls share a key"
    assert featured(3, lang="fr") == [0, 1, 2]
    assert calls == [(3, "en"), (3, "fr")]
    # Arguments are hashed in key names by default; the namespace stays readable.
    assert featured.key(3) == private_key(function_namespace(featured.original), 3, "en", version=1)
    assert featured.key(3).startswith("tests.compute.test_api.featured:v1:#")
    with override_settings(CACHEWISE_READABLE_KEYS=True):
        assert featured.key(3) == make_key(function_namespace(featured.original), 3, "en", version=1)


def test_cached_invalidate_refresh_and_original(backend: str) -> None:
    calls.clear()
    featured(2)
    featured.invalidate(2)
    featured(2)
    assert len(calls) == 2
    assert featured.refresh(2) == [0, 1]
    assert len(calls) == 3
    featured(2)
    assert len(calls) == 3
    assert featured.original(2) == [0, 1]
    assert featured.__name__ == "featured"


def test_cached_unless_skips_storing(backend: str) -> None:
    seen: list[int] = []

    @cached(ttl=60, unless=lambda result: not result)
    def results(q: str) -> list[str]:
        seen.append(1)
        return []

    results("x")
    results("x")
    assert len(seen) == 2


def test_cached_unless_judges_the_result_of_an_async_function(backend: str) -> None:
    seen: list[str] = []

    @cached(ttl=60, unless=lambda result: not result)
    async def results(q: str) -> list[str]:
        seen.append(q)
        await asyncio.sleep(0)
        return [q] if q != "empty" else []

    async def main() -> list[list[str]]:
        return [await results("empty"), await results("empty"), await results("x"), await results("x")]

    assert asyncio.run(main()) == [[], [], ["x"], ["x"]]
    assert seen == ["empty", "empty", "x"], "refused results are recomputed, the others cached"


def test_cached_unencodable_argument_is_a_type_error() -> None:
    @cached(ttl=60)
    def f(obj: object) -> int:
        return 1

    with pytest.raises(TypeError, match="cannot use a value of type"):
        f(object())


def test_cached_on_a_method_binds_self() -> None:
    class Shop:
        @cached(ttl=60)
        def price(self, item: str) -> int:
            return len(item)

    with pytest.raises(TypeError, match="Shop"):
        Shop().price("abc")  # self is part of the key and has no safe encoding


def test_cached_async_function(backend: str) -> None:
    seen: list[int] = []

    @cached(ttl=60)
    async def slow_square(x: int) -> int:
        seen.append(x)
        await asyncio.sleep(0.05)
        return x * x

    async def main() -> list[int]:
        results = await asyncio.gather(*(slow_square(4) for _ in range(20)))
        results.append(await slow_square(4))
        results.append(await slow_square.refresh(4))
        return results

    assert asyncio.run(main()) == [16] * 22
    assert seen == [4, 4], "one computation for the herd, one for refresh()"


def test_aget_or_compute_accepts_sync_and_async_compute(backend: str) -> None:
    async def compute() -> str:
        await asyncio.sleep(0)
        return "async"

    def sync_compute() -> str | None:
        return None

    async def main() -> tuple[str, str | None]:
        a = await aget_or_compute(make_key("a1"), compute, 60)
        b = await aget_or_compute(make_key("a2"), sync_compute, 60)
        return a, b

    assert asyncio.run(main()) == ("async", None)


def test_xfetch_decision_rises_towards_expiry() -> None:
    from cachewise.compute.stampede import xfetch_due
    from cachewise.store.adapter import Entry

    now = 1000.0
    far = Entry("v", now, now + 3600, 0.2)
    near = Entry("v", now, now + 0.01, 0.2)
    unmeasured = Entry("v", now, now + 0.01, 0.0)
    assert sum(xfetch_due(far, 1.0, now) for _ in range(1000)) == 0
    assert sum(xfetch_due(near, 1.0, now) for _ in range(1000)) > 900
    assert not any(xfetch_due(unmeasured, 1.0, now) for _ in range(100)), "no compute time: no early refresh"


def test_store_path_is_chosen_per_backend(backend: str) -> None:
    from cachewise.store.adapter import GenericStore

    store = get_store()
    assert isinstance(store, GenericStore) == (backend == "locmem")
    assert store.strong == (backend != "locmem"), "every Redis backend takes the fast path"
    with override_settings(CACHEWISE_STORE="generic"):
        assert isinstance(get_store(), GenericStore)
