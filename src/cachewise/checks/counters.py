"""System checks of counters (``cachewise.E030``-``E034``, ``W040``-``W044``), apart from
:mod:`cachewise.checks.caches` so that module stays small; registered by ``CachewiseConfig.ready``.

``cachewise.E030`` (deploy, live): counters on a Redis server whose ``maxmemory-policy`` can evict
their keys (``allkeys-*``; ``volatile-*`` for counters created with ``ttl=``). The same rule is
enforced at run time by :mod:`cachewise.counters.guard`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Error, Tags, register
from django.utils.module_loading import import_string

from cachewise.conf import conf
from cachewise.counters.counter import Counter
from cachewise.counters.guard import can_evict

from .caches import Messages, _memory_info
from .redis_probe import RedisTarget, redis_targets

__all__ = ["check_counter_eviction"]


def _counter_aliases() -> dict[str, list[Any]]:
    """alias -> the counters of ``CACHEWISE_COUNTERS`` on it; ``CACHEWISE_COUNTERS_ALIAS`` when set.

    Paths that do not import are left to ``manage.py cachewise flush-counters``, which reports them.
    """
    aliases: dict[str, list[Any]] = {}
    if hasattr(settings, "CACHEWISE_COUNTERS_ALIAS"):
        aliases[conf.COUNTERS_ALIAS] = []
    for path in conf.COUNTERS:
        try:
            counter = import_string(path)
        except ImportError:
            continue
        if isinstance(counter, Counter):
            aliases.setdefault(counter.alias, []).append(counter)
    return aliases


def _eviction_error(
    alias: str, target: RedisTarget, info: Mapping[str, Any], counters: list[Any]
) -> Messages:
    policy, maxmemory = str(info.get("maxmemory_policy", "")), int(info.get("maxmemory", 0) or 0)
    with_ttl = [repr(c) for c in counters if c.ttl is not None]
    if not can_evict(policy, maxmemory, ttl=bool(with_ttl)):
        return []
    what = "any key" if policy.startswith("allkeys-") else f"keys with a TTL ({', '.join(with_ttl)})"
    return [
        Error(
            f"Counters on cache {alias!r} live on Redis at {target.address} with maxmemory-policy "
            f"{policy}, which evicts {what} when memory is full: pending increments would be lost. "
            "Counter.incr and flush refuse this server.",
            hint="Put counters on their own cache alias (CACHEWISE_COUNTERS_ALIAS) on a server with "
            "maxmemory-policy noeviction, or use volatile-lru on a shared server (cache entries "
            "have a TTL, counters created without ttl= have none). See docs/counters.md.",
            obj=alias,
            id="cachewise.E030",
        )
    ]


@register(Tags.caches, deploy=True)
def check_counter_eviction(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """E030 (deploy, live): the server of each counters' alias must not be able to evict them.

    Checked for the counters listed in ``CACHEWISE_COUNTERS`` and the ``CACHEWISE_COUNTERS_ALIAS``
    alias when that is set. An unreachable server is reported by W008.
    """
    messages: Messages = []
    targets = {alias: target for alias, _entry, target in redis_targets()}
    for alias, counters in _counter_aliases().items():
        target = targets.get(alias)
        if target is None:
            continue
        try:
            info = _memory_info(target)
        except Exception:  # noqa: BLE001 - W008 reports it
            continue
        messages.extend(_eviction_error(alias, target, info, counters))
    return messages
