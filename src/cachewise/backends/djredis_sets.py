"""django-redis 7.0's set methods (``sadd`` ... ``sunionstore``) on cachewise's backend.

Members are stored in the cache's value format (``cache.encode``: ints as digits, anything else
with the header byte and, when signing is on, its MAC), so equal values are equal members and a
member is decoded like any cached value; a member that cannot be decoded (tampered, unsigned while
signing is on) is left out of the answer and reported, never returned. Keys get ``KEY_PREFIX``
and the version. One round trip per call. Reads go through the failure policy as ``get`` (an
outage answers as for an empty set), writes as ``set``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from cachewise.exceptions import SerializationError

if TYPE_CHECKING:
    import redis

    from cachewise.resilience import Resilience

__all__ = ["MembersMixin", "SetsMixin", "glob_test"]

_SKIP: Any = object()


class MembersMixin:
    """Encoding, decoding and guarded calls shared by the set, sorted-set and hash families."""

    resilience: Resilience

    if TYPE_CHECKING:  # provided by RedisCache

        def get_client(self, *, write: bool = True) -> redis.Redis: ...
        def make_and_validate_key(self, key: str, version: int | None = None) -> str: ...
        def decode(self, raw: bytes) -> Any: ...
        def encode(self, value: Any) -> Any: ...

    def _read(self, fn: Callable[[redis.Redis], Any], empty: Any) -> Any:
        client = self.get_client(write=False)
        return self.resilience.call("get", lambda: fn(client), fallback=lambda error: empty)

    def _write(self, fn: Callable[[redis.Redis], Any], empty: Any) -> Any:
        client = self.get_client()
        return self.resilience.call("set", lambda: fn(client), fallback=lambda error: empty)

    def _member(self, raw: Any) -> Any:
        """One stored member decoded, or ``_SKIP`` (reported) when it cannot be read."""
        try:
            return self.decode(raw)
        except SerializationError as exc:
            self.resilience.report_unreadable("get", exc)
            return _SKIP

    def _members(self, raws: Iterable[Any]) -> list[Any]:
        return [value for value in map(self._member, raws) if value is not _SKIP]

    def _keys(self, keys: Iterable[str], version: int | None) -> list[str]:
        return [self.make_and_validate_key(key, version) for key in keys]


class SetsMixin(MembersMixin):
    """Redis sets of cached values."""

    def sadd(self, key: str, *values: Any, version: int | None = None) -> int:
        full, members = self.make_and_validate_key(key, version), [self.encode(v) for v in values]
        return int(self._write(lambda c: c.sadd(full, *members), 0))

    def srem(self, key: str, *members: Any, version: int | None = None) -> int:
        full, encoded = self.make_and_validate_key(key, version), [self.encode(m) for m in members]
        return int(self._write(lambda c: c.srem(full, *encoded), 0))

    def scard(self, key: str, version: int | None = None) -> int:
        full = self.make_and_validate_key(key, version)
        return int(self._read(lambda c: c.scard(full), 0))

    def sismember(self, key: str, member: Any, version: int | None = None) -> bool:
        full, encoded = self.make_and_validate_key(key, version), self.encode(member)
        return bool(self._read(lambda c: c.sismember(full, encoded), 0))

    def smismember(self, key: str, *members: Any, version: int | None = None) -> list[bool]:
        full, encoded = self.make_and_validate_key(key, version), [self.encode(m) for m in members]
        found = self._read(lambda c: c.smismember(full, encoded), [0] * len(encoded))
        return [bool(flag) for flag in found]

    def smembers(self, key: str, version: int | None = None) -> set[Any]:
        full = self.make_and_validate_key(key, version)
        return set(self._members(self._read(lambda c: c.smembers(full), set())))

    def smove(self, source: str, destination: str, member: Any, version: int | None = None) -> bool:
        src, dst = self.make_and_validate_key(source, version), self.make_and_validate_key(destination)
        encoded = self.encode(member)
        return bool(self._write(lambda c: c.smove(src, dst, encoded), False))

    def spop(self, key: str, count: int | None = None, version: int | None = None) -> Any:
        """One random member removed (None if empty), or a set of ``count`` of them."""
        full = self.make_and_validate_key(key, version)
        raw = self._write(lambda c: c.spop(full, count), None if count is None else [])
        if isinstance(raw, list):
            return set(self._members(raw))
        value = None if raw is None else self._member(raw)
        return None if value is _SKIP else value

    def srandmember(self, key: str, count: int | None = None, version: int | None = None) -> Any:
        """One random member (None if empty), or a list of ``count`` of them."""
        full = self.make_and_validate_key(key, version)
        raw = self._read(lambda c: c.srandmember(full, count), None if count is None else [])
        if isinstance(raw, list):
            return self._members(raw)
        value = None if raw is None else self._member(raw)
        return None if value is _SKIP else value

    def _combine(self, command: str, keys: tuple[str, ...], version: int | None) -> set[Any]:
        full = self._keys(keys, version)
        return set(self._members(self._read(lambda c: getattr(c, command)(full), [])))

    def _store(
        self, command: str, dest: str, keys: Iterable[str], versions: tuple[int | None, int | None]
    ) -> int:
        target = self.make_and_validate_key(dest, versions[0])
        full = self._keys(keys, versions[1])
        return int(self._write(lambda c: getattr(c, command)(target, full), 0))

    def sdiff(self, *keys: str, version: int | None = None) -> set[Any]:
        return self._combine("sdiff", keys, version)

    def sinter(self, *keys: str, version: int | None = None) -> set[Any]:
        return self._combine("sinter", keys, version)

    def sunion(self, *keys: str, version: int | None = None) -> set[Any]:
        return self._combine("sunion", keys, version)

    def sdiffstore(
        self, dest: str, *keys: str, version_dest: int | None = None, version_keys: int | None = None
    ) -> int:
        return self._store("sdiffstore", dest, keys, (version_dest, version_keys))

    def sinterstore(self, dest: str, *keys: str, version: int | None = None) -> int:
        return self._store("sinterstore", dest, keys, (version, version))

    def sunionstore(self, destination: str, *keys: str, version: int | None = None) -> int:
        return self._store("sunionstore", destination, keys, (version, version))

    def sscan(
        self, key: str, match: str | None = None, count: int | None = 10, version: int | None = None
    ) -> set[Any]:
        """The members of one SSCAN step from cursor 0; ``match``: see :func:`glob_test`."""
        full, wanted = self.make_and_validate_key(key, version), glob_test(match)
        _, raws = self._read(lambda c: c.sscan(full, 0, count=count), (0, []))
        return {member for member in self._members(raws) if wanted(member)}

    def sscan_iter(
        self, key: str, match: str | None = None, count: int | None = 10, version: int | None = None
    ) -> Iterator[Any]:
        """Every member, SSCANned ``count`` at a time (one round trip per step)."""
        full, wanted = self.make_and_validate_key(key, version), glob_test(match)

        def scan(at: int) -> tuple[int, list[Any]]:
            found = self._read(lambda c: c.sscan(full, at, count=count), (0, []))
            return int(found[0]), list(found[1])

        cursor, raws = scan(0)
        while True:
            yield from filter(wanted, self._members(raws))
            if cursor == 0:
                return
            cursor, raws = scan(cursor)


def glob_test(match: str | None) -> Callable[[Any], bool]:
    """A Redis-style glob (``*``, ``?``, ``[...]``, ``[^...]``, ``\\`` escapes) as a test on members.

    Applied to the decoded members that are strings, after each SSCAN step (Redis' MATCH also
    filters after the step), so it works whatever the value format: stored members are signed,
    compressed or framed, and a glob on their bytes would depend on lengths and MACs. django-redis
    globs the serialized bytes instead (and refuses ``match`` with compression).
    """
    if match is None:
        return lambda member: True
    regex = re.compile(_glob_regex(match), re.DOTALL)
    return lambda member: isinstance(member, str) and regex.fullmatch(member) is not None


def _glob_regex(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        end = glob.find("]", i + 2) if char == "[" else -1
        if char == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        if char == "[" and end != -1:
            body = glob[i + 1 : end]
            negate = body.startswith("^")
            out.append(
                "[" + ("^" if negate else "") + (body[1:] if negate else body).replace("\\", "\\\\") + "]"
            )
            i = end + 1
            continue
        out.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
        i += 1
    return "".join(out)
