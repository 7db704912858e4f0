"""django-redis 7.0's sorted-set (``zadd`` ... ``zscore``) and hash (``hset`` ... ``hexists``) methods.

Sorted-set members are stored in the cache's value format (see :mod:`.djredis_sets`); scores stay
numbers. Hash fields are plain strings (as in django-redis) and values use the value format. Keys
get ``KEY_PREFIX`` and the version; one round trip per call; reads go through the failure policy
as ``get``, writes as ``set``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .djredis_sets import _SKIP, MembersMixin

__all__ = ["HashesMixin", "SortedSetsMixin"]


class SortedSetsMixin(MembersMixin):
    """Redis sorted sets of cached values."""

    def zadd(
        self,
        key: str,
        mapping: Mapping[Any, float],
        nx: bool = False,
        xx: bool = False,
        ch: bool = False,
        incr: bool = False,
        gt: bool = False,
        lt: bool = False,
        version: int | None = None,
    ) -> Any:
        full = self.make_and_validate_key(key, version)
        encoded = {self.encode(member): score for member, score in mapping.items()}
        flags = {"nx": nx, "xx": xx, "ch": ch, "incr": incr, "gt": gt, "lt": lt}
        return self._write(lambda c: c.zadd(full, encoded, **flags), None if incr else 0)

    def zincrby(self, key: str, amount: float, value: Any, version: int | None = None) -> Any:
        full, member = self.make_and_validate_key(key, version), self.encode(value)
        return self._write(lambda c: c.zincrby(full, amount, member), None)

    def zrem(self, key: str, *values: Any, version: int | None = None) -> int:
        full, members = self.make_and_validate_key(key, version), [self.encode(v) for v in values]
        return int(self._write(lambda c: c.zrem(full, *members), 0))

    def zremrangebyscore(
        self, key: str, min: float | str, max: float | str, version: int | None = None
    ) -> int:
        full = self.make_and_validate_key(key, version)
        return int(self._write(lambda c: c.zremrangebyscore(full, min, max), 0))

    def zcard(self, key: str, version: int | None = None) -> int:
        full = self.make_and_validate_key(key, version)
        return int(self._read(lambda c: c.zcard(full), 0))

    def zcount(self, key: str, min: float | str, max: float | str, version: int | None = None) -> int:
        full = self.make_and_validate_key(key, version)
        return int(self._read(lambda c: c.zcount(full, min, max), 0))

    def zscore(self, key: str, value: Any, version: int | None = None) -> Any:
        full, member = self.make_and_validate_key(key, version), self.encode(value)
        return self._read(lambda c: c.zscore(full, member), None)

    def zrank(self, key: str, value: Any, withscore: bool = False, version: int | None = None) -> Any:
        full, member = self.make_and_validate_key(key, version), self.encode(value)
        return self._read(lambda c: c.zrank(full, member, withscore=withscore), None)

    def _pop(self, command: str, key: str, count: int | None, version: int | None) -> Any:
        full = self.make_and_validate_key(key, version)
        pairs = self._scored(self._write(lambda c: getattr(c, command)(full, count), []))
        if count is None:
            return pairs[0] if pairs else None
        return pairs

    def zpopmax(self, key: str, count: int | None = None, version: int | None = None) -> Any:
        return self._pop("zpopmax", key, count, version)

    def zpopmin(self, key: str, count: int | None = None, version: int | None = None) -> Any:
        return self._pop("zpopmin", key, count, version)

    def _scored(self, pairs: list[Any]) -> list[tuple[Any, float]]:
        decoded = [(self._member(member), score) for member, score in pairs]
        return [(member, score) for member, score in decoded if member is not _SKIP]

    def _ranged(self, raw: list[Any], withscores: bool) -> list[Any]:
        return list(self._scored(raw)) if withscores else self._members(raw)

    def zrange(
        self,
        key: str,
        start: int,
        end: int,
        desc: bool = False,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> list[Any]:
        full = self.make_and_validate_key(key, version)
        options: dict[str, Any] = {"desc": desc, "withscores": withscores, "score_cast_func": score_cast_func}
        return self._ranged(self._read(lambda c: c.zrange(full, start, end, **options), []), withscores)

    def zrevrange(
        self,
        key: str,
        start: int,
        end: int,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> list[Any]:
        full = self.make_and_validate_key(key, version)
        options: dict[str, Any] = {"withscores": withscores, "score_cast_func": score_cast_func}
        return self._ranged(self._read(lambda c: c.zrevrange(full, start, end, **options), []), withscores)

    def zrangebyscore(
        self,
        key: str,
        min: float | str,
        max: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> list[Any]:
        full = self.make_and_validate_key(key, version)
        options: dict[str, Any] = {
            "start": start,
            "num": num,
            "withscores": withscores,
            "score_cast_func": score_cast_func,
        }
        raw: list[Any] = self._read(lambda c: c.zrangebyscore(full, min, max, **options), [])
        return self._ranged(raw, withscores)

    def zrevrangebyscore(
        self,
        key: str,
        max: float | str,
        min: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> list[Any]:
        full = self.make_and_validate_key(key, version)
        options: dict[str, Any] = {
            "start": start,
            "num": num,
            "withscores": withscores,
            "score_cast_func": score_cast_func,
        }
        raw: list[Any] = self._read(lambda c: c.zrevrangebyscore(full, max, min, **options), [])
        return self._ranged(raw, withscores)


class HashesMixin(MembersMixin):
    """Redis hashes: string fields, values in the cache's value format."""

    def hset(
        self,
        key: str,
        field: str | None = None,
        value: Any = None,
        mapping: Mapping[str, Any] | None = None,
        version: int | None = None,
    ) -> int:
        """Set ``field`` to ``value`` (and/or every item of ``mapping``); return how many fields are new."""
        full = self.make_and_validate_key(key, version)
        encoded = None if value is None else self.encode(value)
        items: Any = None if mapping is None else {name: self.encode(item) for name, item in mapping.items()}
        return int(self._write(lambda c: c.hset(full, key=field, value=encoded, mapping=items), 0))

    def hdel(self, key: str, field: str, version: int | None = None) -> int:
        full = self.make_and_validate_key(key, version)
        return int(self._write(lambda c: c.hdel(full, field), 0))

    def hlen(self, key: str, version: int | None = None) -> int:
        full = self.make_and_validate_key(key, version)
        return int(self._read(lambda c: c.hlen(full), 0))

    def hkeys(self, key: str, version: int | None = None) -> list[str]:
        full = self.make_and_validate_key(key, version)
        fields: list[Any] = self._read(lambda c: c.hkeys(full), [])
        return [name.decode() if isinstance(name, bytes) else name for name in fields]

    def hexists(self, key: str, field: str, version: int | None = None) -> bool:
        full = self.make_and_validate_key(key, version)
        return bool(self._read(lambda c: c.hexists(full, field), False))
