"""Reading unauthenticated values written by other writers, during a migration window only.

Nothing here runs unless ``OPTIONS["legacy_reads"]`` asks for it: such values carry no MAC, so
reading them trusts every client that could write to the Redis database (see docs/backend.md,
"Migration window"). One source per cache, because the formats overlap byte for byte (a
msgpack value may start with any byte a cachewise header uses):

``"cachewise"``
    Values of cachewise versions that did not sign by default (unsigned header + body) and the
    bare pickles they read.
``"django"`` / ``"django-redis"``
    Django's ``RedisCache`` and django-redis with its defaults: pickle, ints stored raw.
``{"serializer": ..., "compressor": ...}``
    django-redis with its ``SERIALIZER``/``COMPRESSOR`` options: ``"pickle"``, ``"json"`` or
    ``"msgpack"``; ``None``, ``"zlib"``, ``"gzip"``, ``"lzma"``, ``"lz4"`` or ``"zstd"`` (the
    django-redis class paths are accepted too). As django-redis does, a body that does not
    decompress is read as it is (it compresses only above a size threshold).

Values django-redis's ``HerdClient`` wrapped as ``(Marker, value, soft expiry)`` are unwrapped,
and read as misses once past their soft expiry: never returned as the tuple. The configured
serializer still rules: a source that needs pickle is refused on a cache that is not pickle.
"""

from __future__ import annotations

import gzip
import json
import lzma
import pickle
import time
import zlib
from collections.abc import Callable
from typing import Any

from cachewise.exceptions import ConfigurationError, SerializationError

__all__ = ["LegacyReader", "legacy_reader_from_option"]

_HEADER_BASE = 0xC0
_SIGNED = 0x20
_PICKLE_PROTO = 0x80

_DJANGO_REDIS_PATHS = {
    "django_redis.serializers.pickle.PickleSerializer": "pickle",
    "django_redis.serializers.json.JSONSerializer": "json",
    "django_redis.serializers.msgpack.MSGPackSerializer": "msgpack",
    "django_redis.compressors.identity.IdentityCompressor": None,
    "django_redis.compressors.zlib.ZlibCompressor": "zlib",
    "django_redis.compressors.gzip.GzipCompressor": "gzip",
    "django_redis.compressors.lzma.LzmaCompressor": "lzma",
    "django_redis.compressors.lz4.Lz4Compressor": "lz4",
    "django_redis.compressors.zstd.ZStdCompressor": "zstd",
}
_SOURCES = ("cachewise", "django", "django-redis")


def _json_loads(data: bytes) -> Any:
    return json.loads(data.decode())


def _msgpack_loads(data: bytes) -> Any:
    import msgpack

    return msgpack.loads(data, raw=False)


def _lz4_decompress(data: bytes) -> bytes:
    import lz4.frame

    return bytes(lz4.frame.decompress(data))


def _zstd_decompress(data: bytes) -> bytes:
    import zstandard

    # A stream reader: django-redis's frames (pyzstd) may not record the content size.
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


_LOADERS: dict[str, Callable[[bytes], Any]] = {
    "pickle": pickle.loads,
    "json": _json_loads,
    "msgpack": _msgpack_loads,
}
_DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "zlib": zlib.decompress,
    "gzip": gzip.decompress,
    "lzma": lzma.decompress,
    "lz4": _lz4_decompress,
    "zstd": _zstd_decompress,
}


def _name(value: Any, known: dict[str, Any], what: str) -> str | None:
    name = _DJANGO_REDIS_PATHS.get(value, value) if isinstance(value, str) else value
    if name is not None and name not in known:
        raise ConfigurationError(
            f"OPTIONS['legacy_reads'][{what!r}]={value!r}: expected one of {sorted(known)} or "
            "django-redis's class path"
        )
    return name


def _unwrap_herd(value: Any) -> Any:
    """The value inside a django-redis HerdClient tuple; a miss once past its soft expiry."""
    if type(value) is not tuple or len(value) != 3:
        return value
    marker = type(value[0])
    if marker.__name__ != "Marker" or marker.__module__ != "django_redis.client.herd":
        return value
    if value[2] < time.time():
        raise SerializationError("django-redis HerdClient value past its soft expiry: read as a miss")
    return value[1]


class LegacyReader:
    """Decodes unauthenticated payloads of one legacy source (see the module docstring)."""

    def __init__(self, source: str, serializer: str = "pickle", compressor: str | None = None) -> None:
        self.source = source
        self.serializer = serializer
        self.compressor = compressor
        #: Bare pickles of the "cachewise" source are read only on a pickle cache (set by options).
        self.pickle_ok = False
        self._loads = _LOADERS[serializer]
        self._decompress = None if compressor is None else _DECOMPRESSORS[compressor]

    @property
    def unpickles(self) -> bool:
        """True if this source's values are pickles (only a pickle cache may read them)."""
        return self.source != "cachewise" and self.serializer == "pickle"

    def decode(self, raw: bytes, read_frame: Callable[[int, bytes], Any]) -> Any:
        """The value of ``raw``; ``read_frame(header, body)`` reads an unsigned cachewise frame."""
        try:
            if self.source == "cachewise":
                return self._decode_cachewise(raw, read_frame)
            return _unwrap_herd(self._loads(self._body(raw)))
        except SerializationError:
            raise
        except Exception as exc:  # whatever the codec raises is an unreadable payload (re-raised)
            raise SerializationError(f"legacy ({self.source}) payload cannot be read: {exc}") from exc

    def _decode_cachewise(self, raw: bytes, read_frame: Callable[[int, bytes], Any]) -> Any:
        head = raw[0]
        if head >= _HEADER_BASE and not head & _SIGNED:
            return read_frame(head, raw[1:])
        if head == _PICKLE_PROTO and self.pickle_ok:
            return pickle.loads(raw)
        raise SerializationError(f"payload with header 0x{head:02x} is not an earlier cachewise value")

    def _body(self, raw: bytes) -> bytes:
        if self._decompress is None:
            return raw
        try:
            return self._decompress(raw)
        except Exception:  # noqa: BLE001 - stored uncompressed (under django-redis's size threshold)
            return raw


def legacy_reader_from_option(option: Any) -> LegacyReader | None:
    """Validate ``OPTIONS["legacy_reads"]`` and build its reader (None: legacy reads are off)."""
    if option is None or option is False:
        return None
    if isinstance(option, str):
        if option not in _SOURCES:
            raise ConfigurationError(
                f"OPTIONS['legacy_reads']={option!r}: expected one of {list(_SOURCES)} or a dict "
                "{'serializer': ..., 'compressor': ...} describing django-redis's settings"
            )
        return LegacyReader(option)
    if isinstance(option, dict):
        unknown = sorted(set(option) - {"serializer", "compressor"})
        if unknown:
            raise ConfigurationError(f"OPTIONS['legacy_reads'] has unknown keys {unknown}")
        serializer = _name(option.get("serializer", "pickle"), _LOADERS, "serializer")
        if serializer is None:
            raise ConfigurationError("OPTIONS['legacy_reads']['serializer'] cannot be None")
        compressor = _name(option.get("compressor"), _DECOMPRESSORS, "compressor")
        return LegacyReader("django-redis", serializer, compressor)
    raise ConfigurationError(
        f"OPTIONS['legacy_reads']={option!r}: expected None, 'cachewise', 'django', 'django-redis' "
        "or a dict {'serializer': ..., 'compressor': ...}"
    )
