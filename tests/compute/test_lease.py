"""Lease renewal by the process' keeper thread (cachewise.compute.lease)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from cachewise.compute.lease import LeaseRenewal
from cachewise.exceptions import CacheServerError, CacheUnavailableError


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _counting(calls: list[float], answer: bool = True) -> Callable[[], bool]:
    def extend() -> bool:
        calls.append(time.monotonic())
        return answer

    return extend


def test_held_leases_are_renewed_by_one_thread_not_one_per_lease() -> None:
    calls: list[list[float]] = [[] for _ in range(20)]
    renewals = [LeaseRenewal(_counting(calls[i]), 0.3) for i in range(20)]
    for renewal in renewals:
        renewal.__enter__()
    try:
        assert _wait_for(lambda: min(map(len, calls)) >= 2)
        keepers = [t for t in threading.enumerate() if t.name == "cachewise-lease"]
        assert len(keepers) == 1
    finally:
        for renewal in renewals:
            renewal.__exit__(None, None, None)


def test_a_renewal_stops_when_its_block_ends() -> None:
    calls: list[float] = []
    with LeaseRenewal(_counting(calls), 0.15):
        assert _wait_for(lambda: len(calls) >= 1)
    ended = len(calls)
    time.sleep(0.5)  # several renewal periods
    assert len(calls) <= ended + 1  # at most one extend that was already in flight


def test_a_lost_lock_ends_the_renewal_and_says_so() -> None:
    calls: list[float] = []
    with LeaseRenewal(_counting(calls, answer=False), 0.15) as renewal:
        assert _wait_for(lambda: renewal.lost)
        time.sleep(0.3)
    assert len(calls) == 1


def test_an_outage_does_not_end_the_renewal() -> None:
    answers = iter([CacheUnavailableError("down"), CacheUnavailableError("down"), True, True, True])
    seen: list[object] = []

    def extend() -> bool:
        answer = next(answers, True)
        seen.append(answer)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    with LeaseRenewal(extend, 0.15) as renewal:
        assert _wait_for(lambda: len(seen) >= 4)
        assert not renewal.lost


def test_an_extend_that_raises_ends_only_its_own_renewal(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> bool:
        raise CacheServerError("WRONGTYPE Operation against a key holding the wrong kind of value")

    calls: list[float] = []
    with LeaseRenewal(broken, 0.15), LeaseRenewal(_counting(calls), 0.15):
        time.sleep(0.2)  # the broken one came due and raised
        assert _wait_for(lambda: len(calls) >= 3)  # the keeper thread is still renewing the other
    assert "renewing a lock lease failed" in caplog.text
