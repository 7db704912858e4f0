"""The value format on the wire: one header byte, then an optional signature, then the body.

Layout of a stored value (ints are the exception, see below)::

    header (1 byte) | HMAC-SHA256 (32 bytes, only when signed) | body (serialized, maybe compressed)

    header = 0b11SC_CSSS: 0xC0 | signed << 5 | compressor << 3 | serializer

The header says how the body was written, so a value stays readable after the settings switch
to another serializer, compressor or signing mode: a format change needs no flush. Headers are
0xC0-0xFF, which can never be mistaken for the two other things found in a cache database:

* ints, stored raw as ASCII digits (``b"42"``, ``b"-7"``) so that Redis ``INCRBY`` works on them
  (``type(value) is int`` only: ``True`` and int subclasses are serialized like any value);
* a legacy pickle written by Django's built-in RedisCache or django-redis (first byte 0x80, the
  pickle PROTO opcode), read as pickle so that switching backends needs no flush either.

Signing (HMAC-SHA256 over header and body, keyed by ``signing_key`` or a key derived from
``SECRET_KEY``) protects a cache that others can write to: when signing is on, a payload that is
unsigned, legacy or carries a wrong MAC is rejected with :class:`SignatureError` *before* anything
is deserialized, so a forged pickle never runs. Raw ints are accepted unsigned: parsing digits
runs no code. With signing off, signed payloads are read without verification (the cache trusts
its writers in that mode anyway), which keeps a switch from signed to unsigned flush-free.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import zlib
from collections.abc import Callable
from typing import Any, Protocol

from django.utils.module_loading import import_string

from cachewise.exceptions import ConfigurationError, SerializationError, SignatureError

__all__ = [
    "COMPRESSORS",
    "SERIALIZERS",
    "Compressor",
    "Serializer",
    "ValueFormat",
    "derive_signing_key",
]

_HEADER_BASE = 0xC0
_SIGNED = 0x20
_MAC_SIZE = 32
_PICKLE_PROTO = 0x80
_INT_FIRST_BYTES = frozenset(b"-0123456789")
_VIEW_FROM = 32 * 1024


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
    "pickle": "cachewise.backends.format.PickleSerializer",
    "json": "cachewise.backends.format.JSONSerializer",
    "msgpack": "cachewise.backends.format.MsgpackSerializer",
}
COMPRESSORS: dict[str, str] = {
    "zlib": "cachewise.backends.format.ZlibCompressor",
    "zstd": "cachewise.backends.format.ZstdCompressor",
    "lz4": "cachewise.backends.format.Lz4Compressor",
}


def _load_plugin(spec: Any, registry: dict[str, str], kind: str, id_range: range) -> Any:
    """Resolve a name, dotted path, class or instance into a serializer/compressor instance."""
    path = registry.get(spec, spec) if isinstance(spec, str) else spec
    try:
        obj = import_string(path) if isinstance(path, str) else path
        instance = obj() if isinstance(obj, type) else obj
    except ImportError as exc:
        raise ConfigurationError(
            f"{kind} {spec!r} cannot be loaded ({exc}): use one of {sorted(registry)} (installing its "
            "extra, e.g. django-cachewise[msgpack]) or a dotted path to a class"
        ) from exc
    if getattr(instance, "format_id", None) not in id_range:
        raise ConfigurationError(
            f"{kind} {spec!r} needs an integer format_id in {id_range.start}-{id_range.stop - 1} "
            "(stored in each value's header byte)"
        )
    return instance


def derive_signing_key(secret: str | bytes) -> bytes:
    """A cache-specific key from ``secret``, so a leaked MAC never helps against other uses of it."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, b"cachewise.backends.format.signing", hashlib.sha256).digest()


class ValueFormat:
    """Encode values for Redis and decode what Redis returns; see the module docstring.

    Writing uses the configured serializer, compressor (bodies of ``compress_min_bytes`` or more)
    and signing key; reading accepts every format the header byte can name, so old values stay
    readable. Instances are immutable and thread-safe.
    """

    def __init__(
        self,
        serializer: Any = "pickle",
        compressor: Any = None,
        compress_min_bytes: int = 1024,
        signing_key: bytes | None = None,
    ) -> None:
        self.serializer: Serializer = _load_plugin(serializer, SERIALIZERS, "serializer", range(1, 8))
        self.compressor: Compressor | None = (
            None if compressor is None else _load_plugin(compressor, COMPRESSORS, "compressor", range(1, 4))
        )
        self.compress_min_bytes = int(compress_min_bytes)
        self.signing_key = signing_key
        self._plain_header = _HEADER_BASE | self.serializer.format_id
        self._serializers: dict[int, Serializer] = {self.serializer.format_id: self.serializer}
        self._compressors: dict[int, Compressor] = {}
        if self.compressor is not None:
            self._compressors[self.compressor.format_id] = self.compressor

    @property
    def fast_header(self) -> int:
        """The header whose body is ``fast_loads(raw[1:])``; -1 (matches nothing) when signing is on."""
        return -1 if self.signing_key is not None else self._plain_header

    @property
    def fast_loads(self) -> Callable[[bytes | memoryview], Any]:
        """The configured serializer's ``loads``, for callers that inline the hit path."""
        return self.serializer.loads

    @property
    def signed(self) -> bool:
        """True when values are written with, and read only with, a valid HMAC."""
        return self.signing_key is not None

    def encode(self, value: Any) -> bytes | int:
        """Return the stored form of ``value``: raw for ``int`` (so INCR works), else header + body."""
        if type(value) is int:
            return value
        body = self.serializer.dumps(value)
        header = self._plain_header
        if self.compressor is not None and len(body) >= self.compress_min_bytes:
            compressed = self.compressor.compress(body)
            if len(compressed) < len(body):  # incompressible data is stored as it is
                body = compressed
                header |= self.compressor.format_id << 3
        if self.signing_key is None:
            return bytes((header,)) + body
        head = bytes((header | _SIGNED,))
        mac = hmac.new(self.signing_key, head + body, hashlib.sha256).digest()
        return head + mac + body

    def decode(self, raw: bytes) -> Any:
        """Return the value stored as ``raw``; raise SerializationError (or SignatureError) if unreadable."""
        if not raw:
            raise SerializationError("empty payload: not written by a cachewise or Django cache backend")
        head = raw[0]
        if head == self._plain_header and self.signing_key is None:
            # The hit path. Slicing copies, but is faster than a memoryview below ~32 KB.
            try:
                return self.serializer.loads(raw[1:] if len(raw) < _VIEW_FROM else memoryview(raw)[1:])
            except Exception as exc:
                raise SerializationError(f"payload with header 0x{head:02x} cannot be read: {exc}") from exc
        if head in _INT_FIRST_BYTES:
            return self._decode_int(raw)
        if head < _HEADER_BASE:
            return self._decode_legacy(raw, head)
        return self._decode_framed(raw, head)

    def _decode_int(self, raw: bytes) -> int:
        try:
            return int(raw)
        except ValueError:
            raise SerializationError(
                f"payload starting {raw[:8]!r} is neither an int nor a cachewise value"
            ) from None

    def _decode_legacy(self, raw: bytes, head: int) -> Any:
        if head != _PICKLE_PROTO:
            raise SerializationError(f"unknown payload header 0x{head:02x}: not written by a known backend")
        if self.signing_key is not None:
            raise SignatureError("unsigned legacy pickle rejected: signing is on, so it is never unpickled")
        try:
            return pickle.loads(raw)
        except Exception as exc:
            raise SerializationError(f"legacy pickle payload cannot be read: {exc}") from exc

    def _decode_framed(self, raw: bytes, head: int) -> Any:
        view = memoryview(raw)
        if head & _SIGNED:
            body = view[1 + _MAC_SIZE :]
            if self.signing_key is not None:
                self._verify(view, body)
        elif self.signing_key is not None:
            raise SignatureError("unsigned payload rejected: signing is on, so it is never deserialized")
        else:
            body = view[1:]
        data: bytes | memoryview = body
        compressor_id = (head >> 3) & 0x3
        try:
            if compressor_id:
                data = self._compressor_for(compressor_id).decompress(body)
            return self._serializer_for(head & 0x7).loads(data)
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(f"payload with header 0x{head:02x} cannot be read: {exc}") from exc

    def _verify(self, view: memoryview, body: memoryview) -> None:
        assert self.signing_key is not None
        if len(view) < 1 + _MAC_SIZE:
            raise SignatureError("signed payload is truncated")
        signer = hmac.new(self.signing_key, view[:1], hashlib.sha256)
        signer.update(body)
        if not hmac.compare_digest(signer.digest(), view[1 : 1 + _MAC_SIZE]):
            raise SignatureError("payload signature does not match: tampered, or signed with another key")

    def _serializer_for(self, format_id: int) -> Serializer:
        found = self._serializers.get(format_id)
        if found is None:
            name = next((n for n, p in SERIALIZERS.items() if _id_of(p) == format_id), None)
            if name is None:
                raise SerializationError(f"payload uses serializer id {format_id}, which is not known here")
            found = _load_plugin(name, SERIALIZERS, "serializer", range(1, 8))
            self._serializers[format_id] = found  # benign race: both threads store equal objects
        return found

    def _compressor_for(self, format_id: int) -> Compressor:
        found = self._compressors.get(format_id)
        if found is None:
            name = next((n for n, p in COMPRESSORS.items() if _id_of(p) == format_id), None)
            if name is None:
                raise SerializationError(f"payload uses compressor id {format_id}, which is not known here")
            found = _load_plugin(name, COMPRESSORS, "compressor", range(1, 4))
            self._compressors[format_id] = found
        return found


_BUILTIN_IDS = {
    "cachewise.backends.format.PickleSerializer": 1,
    "cachewise.backends.format.JSONSerializer": 2,
    "cachewise.backends.format.MsgpackSerializer": 3,
    "cachewise.backends.format.ZlibCompressor": 1,
    "cachewise.backends.format.ZstdCompressor": 2,
    "cachewise.backends.format.Lz4Compressor": 3,
}


def _id_of(path: str) -> int:
    return _BUILTIN_IDS[path]
