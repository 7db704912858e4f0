"""Cache keys that are namespaced, versioned, injective and always memcached-safe.

``make_key("search", query, filters, page, version=2)`` gives ``search:v2:<parts>`` where every
part is encoded by type, so ``1`` and ``"1"`` never share a key, and a key that would pass
:data:`MAX_KEY_LENGTH` keeps a readable head and ends in a 128-bit digest of the whole. The result
only ever holds printable ASCII without spaces, so it is valid for Redis, memcached (250 bytes with
room left for ``KEY_PREFIX`` and Django's version) and ``redis-cli SCAN MATCH search:*``.

Encoding (each part; the grammar is prefix-free, which makes distinct inputs give distinct keys):

=====================  =============================================================
``int``                decimal: ``42``, ``-7``
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

from .exceptions import InvalidKeyError

__all__ = ["MAX_KEY_LENGTH", "encode_part", "make_key", "validate_namespace"]

#: Longest key make_key returns. memcached refuses keys over 250 bytes; Django's default key
#: function adds ``KEY_PREFIX:VERSION:``, so 200 leaves 50 bytes for those.
MAX_KEY_LENGTH = 200
#: Characters of the readable head kept in front of the digest of a hashed key.
HASHED_HEAD_LENGTH = 64

_PLAIN_STR = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_RESERVED_WORDS = frozenset({"None", "True", "False"})
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-:]{0,63}\Z")


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a safe namespace, else raise :class:`InvalidKeyError`."""
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise InvalidKeyError(
            f"namespace {namespace!r} is not valid: use 1-64 characters from letters, digits, "
            "'_', '.', '-' and ':' (for example 'article' or 'article:views')"
        )
    return namespace


def _quote(text: str) -> str:
    return quote(text, safe="")


def _encode_str(value: str) -> str:
    if _PLAIN_STR.match(value) and value not in _RESERVED_WORDS:
        return value
    return "'" + _quote(value)


def _encode_datetime(value: datetime.datetime) -> str:
    return "~t" + _quote(value.isoformat())


def _encode_date(value: datetime.date) -> str:
    return "~d" + value.isoformat()


def _encode_float(value: float) -> str:
    return "~f" + repr(value)


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
    return f"~o{meta.label_lower}={encode_part(value.pk)}"


# Exact-type dispatch keeps the hot path to one dict lookup; subclasses fall back to the
# isinstance chain in _encode_other (bool before int, datetime before date).
_ENCODERS: dict[type, Callable[[Any], str]] = {
    str: _encode_str,
    int: str,
    bool: str,
    type(None): str,
    float: _encode_float,
    decimal.Decimal: lambda v: "~D" + str(v),
    datetime.datetime: _encode_datetime,
    datetime.date: _encode_date,
    datetime.time: lambda v: "~h" + _quote(v.isoformat()),
    uuid.UUID: lambda v: "~u" + v.hex,
    bytes: lambda v: "~b" + v.hex(),
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


def _encode_other(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return _encode_str(str.__str__(value))
    fallbacks: tuple[tuple[type, Callable[[Any], str]], ...] = (
        (datetime.datetime, _encode_datetime),
        (datetime.date, _encode_date),
        (float, _encode_float),
        (Mapping, _encode_mapping),
        (list, _encode_sequence),
        (tuple, _encode_sequence),
    )
    for kind, encoder in fallbacks:
        if isinstance(value, kind):
            return encoder(value)
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        return _encode_model(value)
    raise TypeError(
        f"cannot use a value of type {type(value).__module__}.{type(value).__qualname__} in a cache "
        "key; pass str, int, bool, None, float, Decimal, date/datetime/time, UUID, bytes, "
        "list/tuple, dict, set or a saved model instance (or convert it to one of those)"
    )


def make_key(namespace: str, *parts: Any, version: int = 1) -> str:
    """Build ``namespace:v<version>[:<parts>]`` from any encodable inputs, hashed when too long.

    Put every input the cached value depends on into ``parts`` (user, tenant, language, filters,
    page): a forgotten input is the classic way to serve one user's data to another. Bump
    ``version`` when the shape of the cached value changes.
    """
    validate_namespace(namespace)
    if type(version) is not int or version < 0:
        raise InvalidKeyError(f"version must be a non-negative int, got {version!r}")
    head = f"{namespace}:v{version}"
    if not parts:
        return head
    body = ":".join([encode_part(part) for part in parts])
    key = f"{head}:{body}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    # 128 bits of SHA-256: a collision would serve one input's value to another, so the 64 bits
    # of the usual sha1()[:16] recipe are not enough for caches with billions of keys.
    digest = hashlib.sha256(body.encode("ascii")).hexdigest()[:32]
    readable = body[:HASHED_HEAD_LENGTH].rstrip("%")
    return f"{head}:{readable}~#{digest}"
