"""Serializers and compressors of the value format, and how settings name them.

Each plug-in carries a ``format_id`` that goes into the header byte of every value it wrote
(:mod:`cachewise.backends.format`). Which of them may *read* a payload is decided by the value
format, never by the payload: see :meth:`cachewise.backends.format.ValueFormat.decode`.
"""

from __future__ import annotations

import json
import pickle
import zlib
from collections.abc import Callable
from typing import Any, Protocol

from django.utils.module_loading import import_string

from cachewise.exceptions import ConfigurationError
from cachewise.extras import missing_extra

__all__ = [
    "COMPRESSORS",
    "SERIALIZERS",
    "Compressor",
    "Serializer",
    "compressor_for_id",
    "load_plugin",
]


class Serializer(Protocol):
    """Turns values into bytes and back; ``format_id`` (1-7) goes into the header byte."""

    format_id: int

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes | memoryview) -> Any: ...


class Compressor(Protocol):
    """Compresses bodies; ``format_id`` (1-3) goes into the header byte."""

    format_id: int

    def compress(self, data: bytes) -> bytes: ...

    def decompress(self, data: bytes | memoryview) -> bytes: ...


class PickleSerializer:
    """Pickle, highest protocol: HttpResponse, sessions and any Python object round-trip."""

    format_id = 1
    loads = staticmethod(pickle.loads)  # the C function itself: no Python frame on the hit path

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


class JSONSerializer:
    """Compact UTF-8 JSON: portable and safe to read, but tuples come back as lists."""

    format_id = 2

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(self, data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))


class MsgpackSerializer:
    """msgpack (``pip install 'django-cachewise[msgpack]'``): compact and safe to read."""

    format_id = 3

    def __init__(self) -> None:
        import msgpack

        self._packb: Callable[..., bytes] = msgpack.packb
        self._unpackb: Callable[..., Any] = msgpack.unpackb

    def dumps(self, value: Any) -> bytes:
        return self._packb(value, use_bin_type=True)

    def loads(self, data: bytes | memoryview) -> Any:
        return self._unpackb(data, raw=False)


class ZlibCompressor:
    """zlib from the standard library, level 6."""

    format_id = 1

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, 6)

    def decompress(self, data: bytes | memoryview) -> bytes:
        return zlib.decompress(data)


class ZstdCompressor:
    """Zstandard (``pip install 'django-cachewise[zstd]'``), level 3: fast with a good ratio."""

    format_id = 2

    def __init__(self) -> None:
        import zstandard

        self._compressor = zstandard.ZstdCompressor(level=3)
        self._decompressor = zstandard.ZstdDecompressor()

    def compress(self, data: bytes) -> bytes:
        return bytes(self._compressor.compress(data))

    def decompress(self, data: bytes | memoryview) -> bytes:
        return bytes(self._decompressor.decompress(data))


class Lz4Compressor:
    """LZ4 frames (``pip install 'django-cachewise[lz4]'``): the fastest to decompress."""

    format_id = 3

    def __init__(self) -> None:
        import lz4.frame

        self._compress: Callable[[bytes], bytes] = lz4.frame.compress
        self._decompress: Callable[[bytes | memoryview], bytes] = lz4.frame.decompress

    def compress(self, data: bytes) -> bytes:
        return self._compress(data)

    def decompress(self, data: bytes | memoryview) -> bytes:
        return self._decompress(data)


SERIALIZERS: dict[str, str] = {
    "pickle": "cachewise.backends.codecs.PickleSerializer",
    "json": "cachewise.backends.codecs.JSONSerializer",
    "msgpack": "cachewise.backends.codecs.MsgpackSerializer",
}
COMPRESSORS: dict[str, str] = {
    "zlib": "cachewise.backends.codecs.ZlibCompressor",
    "zstd": "cachewise.backends.codecs.ZstdCompressor",
    "lz4": "cachewise.backends.codecs.Lz4Compressor",
}


#: built-in name -> the module its extra installs (msgpack, zstd, lz4: extras of the same names)
_EXTRA_OF = {"msgpack": "msgpack", "zstd": "zstandard", "lz4": "lz4"}


def load_plugin(spec: Any, registry: dict[str, str], kind: str, id_range: range) -> Any:
    """Resolve a name, dotted path, class or instance into a serializer/compressor instance."""
    path = registry.get(spec, spec) if isinstance(spec, str) else spec
    try:
        obj = import_string(path) if isinstance(path, str) else path
        instance = obj() if isinstance(obj, type) else obj
    except ImportError as exc:
        if isinstance(spec, str) and spec in _EXTRA_OF:  # a built-in whose package is missing
            raise missing_extra(_EXTRA_OF[spec], f"OPTIONS {kind} {spec!r}", exc) from exc
        raise ConfigurationError(
            f"{kind} {spec!r} cannot be loaded ({exc}): use one of {sorted(registry)} or a dotted "
            "path to a class"
        ) from exc
    if getattr(instance, "format_id", None) not in id_range:
        raise ConfigurationError(
            f"{kind} {spec!r} needs an integer format_id in {id_range.start}-{id_range.stop - 1} "
            "(stored in each value's header byte)"
        )
    return instance


_BUILTIN_COMPRESSOR_IDS = {1: "zlib", 2: "zstd", 3: "lz4"}


def compressor_for_id(format_id: int) -> Compressor | None:
    """The built-in compressor whose id is ``format_id``; None for an unknown id.

    Decompressing runs no code of the payload's choosing, and it only ever happens after the
    payload was authenticated (or in a mode that trusts its writers), so any built-in may read.
    """
    name = _BUILTIN_COMPRESSOR_IDS.get(format_id)
    if name is None:
        return None
    compressor: Compressor = load_plugin(name, COMPRESSORS, "compressor", range(1, 4))
    return compressor
