"""The value format on the wire: one header byte, then a signature, then the body.

Layout of a stored value (ints are the exception, see below)::

    header (1 byte) | HMAC-SHA256 (32 bytes, when signed) | body (serialized, maybe compressed)

    header = 0b11SC_CSSS: 0xC0 | signed << 5 | compressor << 3 | serializer

Who decides how a payload is read is this object, never the payload (see docs/backend.md,
"Threat model"):

* **Signed by default.** The MAC (HMAC-SHA256 over header and body, :mod:`.signing`) is checked
  *before* anything is decompressed or deserialized; a payload that is unsigned, legacy, forged,
  truncated or signed with an unknown key raises :class:`SignatureError` and is read as a miss.
  Keys rotate like Django's: the current one signs, the fallbacks verify too.
* **The configured serializer is the only decoder.** A payload whose header names another
  serializer is refused, so a JSON or msgpack cache never unpickles, whatever the header says.
  Any built-in compressor may be named: decompression runs no code and follows authentication.
* **Ints are stored raw** (``b"42"``, ``b"-7"``; ``type(value) is int`` only) so Redis ``INCRBY``
  works on them (``incr``, counters, namespace versions). They carry no MAC: parsing ASCII digits
  runs no code, and whoever can write to Redis can set an int anyway (or delete any key).
* **Legacy payloads** (earlier cachewise, Django's RedisCache, django-redis) are misses unless
  ``legacy_reads`` opts into one source for a migration window (:mod:`.legacy`).

With ``sign=False`` (an explicit opt-out that ``check --deploy`` reports) values are written
without a MAC and unsigned values are read; signed ones are read without verification so that
the switch needs no flush. Headers are 0xC0-0xFF: never ASCII digits, never a pickle's 0x80.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from cachewise.exceptions import SerializationError, SignatureError

from .codecs import (  # noqa: F401  # noqa: F401 - dotted paths in user settings
    COMPRESSORS,
    SERIALIZERS,
    Compressor,
    JSONSerializer,
    Lz4Compressor,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
    ZlibCompressor,
    ZstdCompressor,
    compressor_for_id,
    load_plugin,
)
from .legacy import LegacyReader
from .signing import MAC_SIZE, Signer, derive_signing_key

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
_INT_FIRST_BYTES = frozenset(b"-0123456789")
_VIEW_FROM = 32 * 1024


class ValueFormat:
    """Encode values for Redis and decode what Redis returns; see the module docstring.

    ``signing_key`` (a derived key, :func:`derive_signing_key`) signs and verifies;
    ``verify_keys`` verify too (rotation); ``signer`` may replace both. Instances are immutable
    and thread-safe.
    """

    def __init__(
        self,
        serializer: Any = "pickle",
        compressor: Any = None,
        compress_min_bytes: int = 1024,
        signing_key: bytes | None = None,
        *,
        verify_keys: tuple[bytes, ...] = (),
        signer: Signer | None = None,
        legacy: LegacyReader | None = None,
    ) -> None:
        self.serializer: Serializer = load_plugin(serializer, SERIALIZERS, "serializer", range(1, 8))
        self.compressor: Compressor | None = (
            None if compressor is None else load_plugin(compressor, COMPRESSORS, "compressor", range(1, 4))
        )
        self.compress_min_bytes = int(compress_min_bytes)
        if signer is None and signing_key is not None:
            signer = Signer([signing_key, *verify_keys])
        self.signer = signer
        self.legacy = legacy
        self._serializer_id = self.serializer.format_id
        self._plain_header = _HEADER_BASE | self._serializer_id
        self._compressors: dict[int, Compressor] = {}
        if self.compressor is not None:
            self._compressors[self.compressor.format_id] = self.compressor

    @property
    def fast_header(self) -> int:
        """The header whose body is ``fast_loads(raw[1:])``; -1 (matches nothing) when signing is on."""
        return -1 if self.signer is not None else self._plain_header

    @property
    def fast_signed_header(self) -> int:
        """The header of a signed, uncompressed value of the configured serializer; -1 when unsigned."""
        return -1 if self.signer is None else self._plain_header | _SIGNED

    def fast_decoder(self) -> Callable[[bytes], Any]:
        """``decode`` with the common case (current key, no compression, not huge) in one frame.

        The hit paths call it per value; anything unusual falls back to :meth:`decode`, which
        raises for what cannot be read and also tries the fallback keys. Signed: the pads and the
        header byte are hashed once (:meth:`Signer.current_states`), so a hit hashes only the body
        and compares in constant time.
        """
        decode, loads = self.decode, self.serializer.loads
        if self.signer is None:
            plain = self._plain_header

            def decode_plain(raw: bytes) -> Any:
                if raw[0] == plain and len(raw) < _VIEW_FROM:
                    return loads(raw[1:])
                return decode(raw)

            return decode_plain
        header = self._plain_header | _SIGNED
        inner, outer = self.signer.current_states(bytes((header,)))
        copy_inner, copy_outer = inner.copy, outer.copy
        equal, start = hmac.compare_digest, 1 + MAC_SIZE

        def decode_signed(raw: bytes) -> Any:
            if raw[0] == header and len(raw) < _VIEW_FROM:
                body = raw[start:]
                state = copy_inner()
                state.update(body)
                mac = copy_outer()
                mac.update(state.digest())
                if equal(mac.digest(), raw[1:start]):
                    return loads(body)
            return decode(raw)  # another key, compressed, large, tampered: verified in full

        return decode_signed

    @property
    def fast_loads(self) -> Callable[[bytes | memoryview], Any]:
        """The configured serializer's ``loads``, for callers that inline the hit path."""
        return self.serializer.loads

    @property
    def signed(self) -> bool:
        """True when values are written with, and read only with, a valid HMAC."""
        return self.signer is not None

    @property
    def signing_key(self) -> bytes | None:
        """The derived key that signs new values (None when signing is off)."""
        return None if self.signer is None else self.signer.keys[0]

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
        if self.signer is None:
            return bytes((header,)) + body
        head = bytes((header | _SIGNED,))
        return head + self.signer.sign(head + body) + body

    def decode(self, raw: bytes) -> Any:
        """The value stored as ``raw``; raises SerializationError (SignatureError: unauthenticated)."""
        if not raw:
            raise SerializationError("empty payload: not written by a cachewise or Django cache backend")
        head = raw[0]
        if head in _INT_FIRST_BYTES:
            return self._decode_int(raw)
        if head >= _HEADER_BASE:
            if head & _SIGNED:
                body = self._authenticated_body(raw, head)
                if body is not None:
                    return self.read_frame(head, body)
            elif self.signer is None:
                return self.read_frame(head, raw[1:])
        if self.legacy is not None:
            return self.legacy.decode(raw, self.read_frame)
        if self.signer is not None:
            raise SignatureError(
                f"payload with header 0x{head:02x} is not signed by a known key (unsigned, legacy, "
                "tampered or signed with another SECRET_KEY): read as a miss, never deserialized"
            )
        raise SerializationError(f"unknown payload header 0x{head:02x}: not a value of this cache")

    def _authenticated_body(self, raw: bytes, head: int) -> bytes | None:
        """The body of a signed frame if its MAC verifies (or signing is off); None otherwise."""
        if len(raw) < 1 + MAC_SIZE:
            return None
        body = raw[1 + MAC_SIZE :]
        if self.signer is None or self.signer.verify(raw[:1] + body, raw[1 : 1 + MAC_SIZE]):
            return body
        return None

    def _decode_int(self, raw: bytes) -> Any:
        try:
            return int(raw)
        except ValueError:
            if self.legacy is not None:  # a django-redis JSON float such as b"1.5"
                return self.legacy.decode(raw, self.read_frame)
            raise SerializationError(
                f"payload starting {raw[:8]!r} is neither an int nor a cachewise value"
            ) from None

    def read_frame(self, head: int, body: bytes) -> Any:
        """Deserialize the body of an authenticated (or trusted) frame with the configured serializer."""
        if head & 0x7 != self._serializer_id:
            raise SerializationError(
                f"payload written with serializer id {head & 0x7}, but this cache reads only its "
                f"configured serializer (id {self._serializer_id}): read as a miss"
            )
        data: bytes | memoryview = body if len(body) < _VIEW_FROM else memoryview(body)
        compressor_id = (head >> 3) & 0x3
        try:
            if compressor_id:
                data = self._compressor_for(compressor_id).decompress(data)
            return self.serializer.loads(data)
        except SerializationError:
            raise
        except Exception as exc:  # whatever the codec raises is an unreadable payload (re-raised)
            raise SerializationError(f"payload with header 0x{head:02x} cannot be read: {exc}") from exc

    def _compressor_for(self, format_id: int) -> Compressor:
        found = self._compressors.get(format_id)
        if found is None:
            found = compressor_for_id(format_id)
            if found is None:
                raise SerializationError(f"payload uses compressor id {format_id}, which is not known here")
            self._compressors[format_id] = found  # benign race: both threads store equal objects
        return found
