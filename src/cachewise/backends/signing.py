"""The keys that authenticate cached values: derived from SECRET_KEY, rotated with its fallbacks.

A value is signed with HMAC-SHA256 under a key *derived* from a secret (``SECRET_KEY`` unless
``OPTIONS["signing_key"]`` names dedicated ones), never under the secret itself: a MAC seen in
Redis then says nothing about the secret's other uses (sessions, password reset tokens). The
derivation is an HMAC of a fixed salt under the secret, computed once per secret and kept.

Rotation follows Django's: writes use the current secret; reads accept a MAC made with the
current secret or with any of ``SECRET_KEY_FALLBACKS`` (or the later items of a ``signing_key``
list), so values and cache-backed sessions stay valid while the old key is kept as a fallback.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any

from asgiref.local import Local
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from cachewise.exceptions import ConfigurationError

__all__ = [
    "MAC_SIZE",
    "Signer",
    "derive_signing_key",
    "hmac_sha256",
    "hmac_sha256_states",
    "secrets_from_settings",
    "secrets_of_options",
    "signer_from_options",
]

MAC_SIZE = 32
_SALT = b"cachewise.backends.format.signing"


@functools.lru_cache(maxsize=64)
def derive_signing_key(secret: str | bytes) -> bytes:
    """The cache's own key for ``secret`` (cached: deriving costs an HMAC, reading costs nothing)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, _SALT, hashlib.sha256).digest()


def hmac_sha256_states(key: bytes, prefix: bytes = b"") -> tuple[Any, Any]:
    """HMAC-SHA256's two hash states for ``key``: (inner pad + ``prefix`` hashed, outer pad hashed).

    The MAC of ``prefix + message`` is then ``outer.copy()`` updated with the digest of
    ``inner.copy()`` updated with ``message`` (RFC 2104): the pads, and a fixed prefix such as a
    header byte, are hashed once instead of on every call. ``copy()`` of a hashlib object is
    thread-safe. (OpenSSL 3's own HMAC objects cost more to copy than these two states.)
    """
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
    inner.update(prefix)
    return inner, hashlib.sha256(bytes(byte ^ 0x5C for byte in block))


def hmac_sha256(key: bytes) -> Callable[[bytes], bytes]:
    """``message -> HMAC-SHA256(key, message)``, with the key's pads hashed once.

    The same MAC as ``hmac.digest(key, message, "sha256")`` (RFC 2104), at about the cost of one
    SHA-256 of the message: on OpenSSL 3 ``hmac.digest`` sets up new contexts on every call, which
    costs more than hashing a 1 KB value.
    """
    inner, outer = hmac_sha256_states(key)

    def mac(message: bytes) -> bytes:
        state = inner.copy()
        state.update(message)
        result = outer.copy()
        result.update(state.digest())
        digest: bytes = result.digest()
        return digest

    return mac


class Signer:
    """Signs with the first key, verifies against every key (current first, then fallbacks)."""

    __slots__ = ("_keys", "_macs")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        self._keys = tuple(keys)
        self._macs = tuple(hmac_sha256(key) for key in self._keys)

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The derived keys, current first."""
        return self._keys

    def current_states(self, prefix: bytes) -> tuple[Any, Any]:
        """:func:`hmac_sha256_states` of the current key with ``prefix`` (for inlined hit paths)."""
        return hmac_sha256_states(self._keys[0], prefix)

    @property
    def current(self) -> Callable[[bytes], bytes]:
        """The MAC function of the current key (for callers that inline the hit path)."""
        return self._macs[0]

    def sign(self, message: bytes) -> bytes:
        """The MAC of ``message`` under the current key."""
        return self._macs[0](message)

    def verify(self, message: bytes, mac: bytes) -> bool:
        """True if ``mac`` was made over ``message`` by any of the keys (constant time per key)."""
        return any(hmac.compare_digest(sign(message), mac) for sign in self._macs)


def secrets_from_settings() -> tuple[str | bytes, ...]:
    """``SECRET_KEY`` and then ``SECRET_KEY_FALLBACKS`` (Django 4.1+; empty before)."""
    try:
        secret = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        secret = ""
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ()
    return (secret, *fallbacks)


def _secrets_of(signing_key: Any) -> tuple[str | bytes, ...]:
    keys = tuple(signing_key) if isinstance(signing_key, list | tuple) else (signing_key,)
    if not keys or not all(isinstance(key, str | bytes) and key for key in keys):
        raise ConfigurationError(
            f"OPTIONS['signing_key'] must be a non-empty str or bytes, or a list of them (the first "
            f"signs, every one verifies), got {signing_key!r:.40}"
        )
    return keys


def signer_from_options(sign: Any, signing_key: Any) -> Signer | None:
    """The signer OPTIONS ask for: dedicated keys, SECRET_KEY (+ fallbacks), or None if sign=False."""
    if not isinstance(sign, bool):
        raise ConfigurationError(f"OPTIONS['sign']={sign!r}: expected True (the default) or False")
    if signing_key is not None:
        if not sign:
            raise ConfigurationError(
                "OPTIONS['signing_key'] is set but OPTIONS['sign'] is False: remove one of them"
            )
        return Signer([derive_signing_key(key) for key in _secrets_of(signing_key)])
    if not sign:
        return None
    secrets = secrets_from_settings()
    if not secrets[0]:
        raise ConfigurationError(
            "cachewise signs cached values with a key derived from SECRET_KEY, which is empty: set "
            "SECRET_KEY, or OPTIONS['signing_key'], or opt out with OPTIONS['sign']=False (see "
            "docs/backend.md, 'Threat model')"
        )
    return Signer([derive_signing_key(secret) for secret in secrets if secret])


def secrets_of_options(options: dict[str, Any]) -> tuple[Any, ...]:
    """The settings a cache's signing keys derive from (empty with ``signing_key`` or ``sign=False``).

    Part of the key under which the backend shares its setup: a new SECRET_KEY or fallback list
    must give new signing keys.
    """
    if options.get("sign", True) is False or options.get("signing_key") is not None:
        return ()
    return secrets_from_settings()


def _drop_instances_on_key_change(*, setting: str, **kwargs: Any) -> None:
    """Rebuild cache objects when SECRET_KEY or its fallbacks change (override_settings in tests).

    Django keeps one backend object per thread and rebuilds them only when CACHES changes; a
    backend built under the old key would go on signing with it.
    """
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        caches._connections = Local()  # type: ignore[attr-defined]  # as Django does for CACHES


setting_changed.connect(_drop_instances_on_key_change, dispatch_uid="cachewise.backends.signing.keys")
