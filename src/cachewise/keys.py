"""Cache keys that are namespaced, versioned, injective and always memcached-safe.

``make_key("search", query, filters, page, version=2)`` gives ``search:v2:<parts>`` where every
part is encoded by type, so ``1`` and ``"1"`` never share a key, and a key that would pass
:data:`MAX_KEY_LENGTH` keeps a readable head and ends in a 128-bit digest of the whole. The result
only ever holds printable ASCII without spaces, so it is valid for Redis, memcached (250 bytes with
room left for ``KEY_PREFIX`` and Django's version) and ``redis-cli SCAN MATCH search:*``.

Encoding (each part; the grammar is prefix-free, which makes distinct inputs give distinct keys):

=====================  =============================================================
``int``                decimal: ``42``, ``-7``; beyond 1024 bits ``~x`` + hex (Python refuses
                       to print very long ints in decimal, and the limit is per process)
``str``                as is when it is a plain identifier (``[A-Za-z_][A-Za-z0-9_.-]*``),
                       else ``'`` + percent-encoded UTF-8: ``'hello%20world``
``None``/``bool``      ``None``, ``True``, ``False`` (these words as strings are quoted)
``float``/``Decimal``  ``~f1.5`` / ``~D1.50``
``date``/``datetime``  ``~d2024-05-01`` / ``~t2024-05-01T10%3A00%3A00%2B00%3A00``;
``time``               ``~h10%3A00%3A00``
``UUID``/``bytes``     ``~u<hex>`` / ``~b<hex>``
``list``/``tuple``     ``~l(a,b)`` (lists and tuples of equal items share a key)
``dict``               ``~m(k=v,...)`` with items sorted by their encoded keys
``set``/``frozenset``  ``~s(...)`` with members sorted by their encoding
model instance         ``~o<app_label>.<model>=<pk>``; an unsaved instance is refused
=====================  =============================================================

Equality is by type and value: ``1``, ``True``, ``1.0`` and ``"1"`` all give different keys
although Python calls the first three equal; ``-0.0`` and ``0.0``, or ``Decimal("1.5")`` and
``Decimal("1.50")``, differ too (their text differs). Subclasses of the types above are
encoded as their base type (an ``IntEnum`` member as its int).

The key is ``<namespace>:v<version>`` followed by ``:<part>`` for each part. A namespace may hold
``:``-separated segments but none of them may look like a version segment (``v`` + digits), so
the first such segment always marks where the namespace ends and ``make_key("a:v1")`` can never
equal ``make_key("a", "v1")``. Nothing but a hashed key contains ``#``, so a hashed key can
never equal a plain one; a :func:`private_key` has ``#`` right after the version segment, where
a long key hashed by :func:`make_key` has its readable head, so those two never meet either.

Anything else raises ``TypeError`` naming the type: guessing an encoding for an arbitrary object
(its ``repr`` may hold a memory address) is how caches silently stop hitting or start leaking.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from django.conf import settings

from .exceptions import InvalidKeyError

__all__ = ["MAX_KEY_LENGTH", "encode_part", "make_key", "private_key", "validate_namespace"]

#: Longest key make_key returns. memcached refuses keys over 250 bytes; Django's default key
#: function adds ``KEY_PREFIX:VERSION:``, so 200 leaves 50 bytes for those.
MAX_KEY_LENGTH = 200
#: Characters of the readable head kept in front of the digest of a hashed key.
HASHED_HEAD_LENGTH = 64

_PLAIN_STR = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_RESERVED_WORDS = frozenset({"None", "True", "False"})
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(?::[A-Za-z0-9_][A-Za-z0-9_.\-]*)*\Z")
_VERSION_SEGMENT = re.compile(r"v[0-9]+\Z")
_MAX_NAMESPACE_LENGTH = 64
#: Upper bound for ``version``: keeps ``<namespace>:v<version>`` short enough that every key,
#: hashed ones included, stays within MAX_KEY_LENGTH.
MAX_VERSION = 2**63 - 1
#: Ints up to this many bits are written in decimal; larger ones in hex (see the table above).
_DECIMAL_INT_BITS = 1024


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a safe namespace, else raise :class:`InvalidKeyError`.

    A namespace is 1-64 characters: segments of letters, digits, ``_``, ``.`` and ``-`` joined by
    single ``:``, where no segment is a version segment (``v`` followed by digits only).
    """
    if (
        not isinstance(namespace, str)
        or len(namespace) > _MAX_NAMESPACE_LENGTH
        or not _NAMESPACE.match(namespace)
    ):
        raise InvalidKeyError(
            f"namespace {namespace!r} is not valid: use 1-64 characters from letters, digits, "
            "'_', '.', '-', with ':' between segments (for example 'article' or 'article:views')"
        )
    if any(_VERSION_SEGMENT.match(segment) for segment in namespace.split(":")):
        raise InvalidKeyError(
            f"namespace {namespace!r} has a segment that looks like a version (v<digits>): "
            "pass the version as make_key(..., version=N) so keys stay unambiguous"
        )
    return namespace


def _quote(text: str) -> str:
    # surrogatepass: a str may hold lone surrogates (os.fsdecode, JSON); their 3-byte forms never
    # occur in valid UTF-8, so the encoding stays injective instead of raising.
    return quote(text, safe="", errors="surrogatepass")


def _encode_str(value: str) -> str:
    if _PLAIN_STR.match(value) and value not in _RESERVED_WORDS:
        return value
    return "'" + _quote(value)


def _encode_datetime(value: datetime.datetime) -> str:
    return "~t" + _quote(value.isoformat())


def _encode_date(value: datetime.date) -> str:
    return "~d" + value.isoformat()


def _encode_int(value: int) -> str:
    if value.bit_length() <= _DECIMAL_INT_BITS:
        return int.__repr__(value)
    return "~x" + format(value, "x")


def _encode_float(value: float) -> str:
    return "~f" + float.__repr__(value)


def _encode_decimal(value: decimal.Decimal) -> str:
    return "~D" + decimal.Decimal.__str__(value)


def _encode_time(value: datetime.time) -> str:
    return "~h" + _quote(value.isoformat())


def _encode_uuid(value: uuid.UUID) -> str:
    return "~u" + value.hex


def _encode_bytes(value: bytes) -> str:
    return "~b" + bytes.hex(value)


def _encode_sequence(value: list[Any] | tuple[Any, ...]) -> str:
    return "~l(" + ",".join(encode_part(item) for item in value) + ")"


def _encode_mapping(value: Mapping[Any, Any]) -> str:
    items = sorted((encode_part(k), encode_part(v)) for k, v in value.items())
    return "~m(" + ",".join(f"{k}={v}" for k, v in items) + ")"


def _encode_set(value: set[Any] | frozenset[Any]) -> str:
    return "~s(" + ",".join(sorted(encode_part(item) for item in value)) + ")"


def _encode_model(value: Any) -> str:
    meta = value._meta
    if value.pk is None:
        raise InvalidKeyError(
            f"cannot build a key from an unsaved {meta.label} instance: it has no primary key yet"
        )
    # Labels are Python identifiers, which may be non-ASCII: quote them like any text.
    return f"~o{_quote(meta.label_lower)}={encode_part(value.pk)}"


# Exact-type dispatch keeps the hot path to one dict lookup; subclasses fall back to the
# isinstance chain in _encode_other (bool before int, datetime before date).
_ENCODERS: dict[type, Callable[[Any], str]] = {
    str: _encode_str,
    int: _encode_int,
    bool: str,
    type(None): str,
    float: _encode_float,
    decimal.Decimal: _encode_decimal,
    datetime.datetime: _encode_datetime,
    datetime.date: _encode_date,
    datetime.time: _encode_time,
    uuid.UUID: _encode_uuid,
    bytes: _encode_bytes,
    list: _encode_sequence,
    tuple: _encode_sequence,
    dict: _encode_mapping,
    set: _encode_set,
    frozenset: _encode_set,
}


def encode_part(value: Any) -> str:
    """Encode one key part; raise ``TypeError`` naming the type when it has no safe encoding."""
    encoder = _ENCODERS.get(type(value))
    if encoder is not None:
        return encoder(value)
    return _encode_other(value)


# Subclasses, in the order that matters: bool before int, datetime before date. Each encoder
# calls its base type's own methods, so a subclass's __str__/__repr__ cannot change the key.
_FALLBACKS: tuple[tuple[type, Callable[[Any], str]], ...] = (
    (bool, lambda v: "True" if v else "False"),
    (int, _encode_int),
    (str, lambda v: _encode_str(str.__str__(v))),
    (float, _encode_float),
    (decimal.Decimal, _encode_decimal),
    (datetime.datetime, _encode_datetime),
    (datetime.date, _encode_date),
    (datetime.time, _encode_time),
    (uuid.UUID, _encode_uuid),
    (bytes, _encode_bytes),
    (Mapping, _encode_mapping),
    (list, _encode_sequence),
    (tuple, _encode_sequence),
    (set, _encode_set),
    (frozenset, _encode_set),
)


def _encode_other(value: Any) -> str:
    for kind, encoder in _FALLBACKS:
        if isinstance(value, kind):
            return encoder(value)
    # Here, not at the top: settings files import this module (through caches_url), and the ORM
    # costs ~170 ms to load; only a model instance as a key part needs it.
    from django.db.models import Model  # noqa: PLC0415

    if isinstance(value, Model):
        return _encode_model(value)
    raise TypeError(
        f"cannot use a value of type {type(value).__module__}.{type(value).__qualname__} in a cache "
        "key; pass str, int, bool, None, float, Decimal, date/datetime/time, UUID, bytes, "
        "list/tuple, dict, set or a saved model instance (or convert it to one of those)"
    )


def _head(namespace: str, version: int) -> str:
    validate_namespace(namespace)
    if type(version) is not int or not 0 <= version <= MAX_VERSION:
        raise InvalidKeyError(f"version must be an int from 0 to 2**63-1, got {version!r}")
    return f"{namespace}:v{version}"


def make_key(namespace: str, *parts: Any, version: int = 1) -> str:
    """Build ``namespace:v<version>[:<parts>]`` from any encodable inputs, hashed when too long.

    Put every input the cached value depends on into ``parts`` (user, tenant, language, filters,
    page): a forgotten input is the classic way to serve one user's data to another. Bump
    ``version`` when the shape of the cached value changes. The parts stay readable in the key
    name; use :func:`private_key` when they may hold personal data.
    """
    head = _head(namespace, version)
    if not parts:
        return head
    body = ":".join([encode_part(part) for part in parts])
    key = f"{head}:{body}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    # 128 bits of SHA-256: a collision would serve one input's value to another, so the 64 bits
    # of the usual sha1()[:16] recipe are not enough for caches with billions of keys.
    digest = hashlib.sha256(body.encode("ascii")).hexdigest()[:32]
    # The head is only for humans (SCAN, MONITOR); the digest alone makes the key unique.
    readable = body[:HASHED_HEAD_LENGTH]
    return f"{head}:{readable}~#{digest}"


def private_key(namespace: str, *parts: Any, version: int = 1) -> str:
    """:func:`make_key` with the parts hashed: ``namespace:v<version>:#<128-bit digest>``.

    The key of ``@cached`` calls and ``{% cache %}`` fragments: their arguments (an e-mail address,
    a search query) then never appear in Redis key names, ``SCAN``/``MONITOR`` output or
    ``cachewise bigkeys``, while the readable namespace still groups them for monitoring. The
    digest is of :func:`make_key`'s encoding, so it is injective in the same way; it is a hash,
    not encryption (someone who sees the key and guesses the input can confirm the guess).
    ``CACHEWISE_READABLE_KEYS = True`` returns :func:`make_key`'s readable key instead (debugging).
    """
    if _readable_keys():
        return make_key(namespace, *parts, version=version)
    head = _head(namespace, version)
    if not parts:
        return head
    body = ":".join([encode_part(part) for part in parts])
    return f"{head}:#{hashlib.sha256(body.encode('ascii')).hexdigest()[:32]}"


def _readable_keys() -> bool:
    if not settings.configured:  # a bare script: the safe default
        return False
    return bool(getattr(settings, "CACHEWISE_READABLE_KEYS", False))
