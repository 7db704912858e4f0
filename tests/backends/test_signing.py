"""Secure by default: no code runs from cache data, and SECRET_KEY rotation keeps values valid."""

from __future__ import annotations

import asyncio
import pickle
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
import zstandard
from django.contrib.sessions.backends.cache import SessionStore
from django.core.cache import caches
from django.test import override_settings

from cachewise.backends.format import ValueFormat
from cachewise.backends.redis import RedisCache
from cachewise.backends.signing import Signer, derive_signing_key
from cachewise.exceptions import ConfigurationError
from cachewise.monitoring.metrics import metrics
from cachewise.testing import RedisServerInfo, delete_prefixed

ALIAS = "signing-tests"


def _touch(path: str) -> str:
    Path(path).write_text("the cache ran code")
    return path


class Bomb:
    """Unpickling it creates a file: the visible side effect of code run from cache data."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> Any:
        return (_touch, (self.path,))


_COMPRESS = {0: lambda b: b, 1: zlib.compress, 2: zstandard.ZstdCompressor().compress, 3: lz4.frame.compress}


def _forgeries(bomb: bytes, attacker_key: bytes) -> dict[str, bytes]:
    """The bomb under every header the format knows (0xC0-0xFF) and as bare legacy pickles.

    Each header's body is compressed the way the header says, so a reader that trusted the header
    would decompress and unpickle it. Signed headers carry a zero MAC, and again a MAC that is
    valid under a key the cache does not know (the attacker's own).
    """
    forged: dict[str, bytes] = {}
    for header in range(0xC0, 0x100):
        body = _COMPRESS[(header >> 3) & 0x3](bomb)
        if header & 0x20:
            forged[f"h{header:02x}-zero-mac"] = bytes((header,)) + b"\x00" * 32 + body
            mac = Signer([attacker_key]).sign(bytes((header,)) + body)
            forged[f"h{header:02x}-attacker-mac"] = bytes((header,)) + mac + body
        else:
            forged[f"h{header:02x}"] = bytes((header,)) + body
    return forged


@pytest.fixture
def prefix(redis_server: RedisServerInfo) -> Iterator[str]:
    value = f"s{uuid.uuid4().hex[:10]}"
    yield value
    delete_prefixed(redis_server.url, value)


def make(server: RedisServerInfo, prefix: str, **options: Any) -> RedisCache:
    return RedisCache(server.url, {"KEY_PREFIX": prefix, "OPTIONS": {"alias": ALIAS, **options}})


def _errors() -> float:
    return metrics.snapshot().get(("error", ALIAS, "-"), 0.0)


def _bare_pickles(target: Path) -> dict[str, bytes]:
    return {f"legacy-p{p}": pickle.dumps(Bomb(target), p) for p in (0, 2, pickle.HIGHEST_PROTOCOL)}


@pytest.mark.parametrize(
    "options",
    [{}, {"serializer": "json"}, {"serializer": "msgpack"}],
    ids=["default", "json", "msgpack"],
)
def test_a_forged_pickle_never_runs_under_any_header(
    redis_server: RedisServerInfo, prefix: str, tmp_path: Path, options: dict[str, Any]
) -> None:
    target = tmp_path / "pwned"
    cache = make(redis_server, prefix, **options)
    bomb = pickle.dumps(Bomb(target), pickle.HIGHEST_PROTOCOL)
    forged = {**_forgeries(bomb, b"k" * 32), **_bare_pickles(target)}
    client = cache.get_client()
    client.mset({cache.make_and_validate_key(name): payload for name, payload in forged.items()})
    before = _errors()

    async def read_async() -> Any:
        try:
            return await cache.aget("hc1", "default")
        finally:
            await cache.adisconnect()

    for name in forged:
        assert cache.get(name, "default") == "default", name
    assert cache.get_many(list(forged)) == {}
    assert asyncio.run(read_async()) == "default"
    assert not target.exists()
    assert _errors() - before == 2 * len(forged) + 1  # every rejection counted


def test_a_json_cache_never_unpickles_even_a_validly_signed_pickle(
    redis_server: RedisServerInfo, prefix: str, tmp_path: Path
) -> None:
    """Signed with the cache's own key (as a pickle cache on the same prefix would): still refused."""
    target = tmp_path / "pwned"
    pickle_writer = make(redis_server, prefix, serializer="pickle")
    pickle_writer.get_client().set(
        pickle_writer.make_and_validate_key("signed-bomb"), pickle_writer.encode(Bomb(target))
    )
    for serializer in ("json", "msgpack"):
        reader = make(redis_server, prefix, serializer=serializer)
        assert reader.get("signed-bomb", "default") == "default"
    assert not target.exists()


def test_legacy_reads_of_pickles_are_refused_on_a_json_cache(redis_server: RedisServerInfo) -> None:
    with pytest.raises(ConfigurationError, match="never unpickles"):
        RedisCache(redis_server.url, {"OPTIONS": {"serializer": "json", "legacy_reads": "django"}}).get("k")
    with pytest.raises(ConfigurationError, match="never unpickles"):
        RedisCache(
            redis_server.url,
            {"OPTIONS": {"serializer": "msgpack", "legacy_reads": {"serializer": "pickle"}}},
        ).get("k")


def test_unsigned_payloads_are_read_only_after_an_explicit_opt_out(
    redis_server: RedisServerInfo, prefix: str
) -> None:
    unsigned = make(redis_server, prefix, sign=False)
    unsigned.set("value", {"a": 1})
    assert make(redis_server, prefix).get("value", "miss") == "miss"
    assert make(redis_server, prefix, legacy_reads="cachewise").get("value") == {"a": 1}
    assert unsigned.get("value") == {"a": 1}


def test_ints_stay_raw_so_incr_counters_and_versions_work(redis_server: RedisServerInfo, prefix: str) -> None:
    cache = make(redis_server, prefix)
    cache.set("n", 41)
    assert cache.get_client().get(cache.make_and_validate_key("n")) == b"41"
    assert cache.incr("n") == 42
    assert cache.decr("n", 2) == 40
    assert cache.get("n") == 40
    cache.set("flag", True)  # bool is not an int here: serialized and signed like any value
    raw = cache.get_client().get(cache.make_and_validate_key("flag"))
    assert isinstance(raw, bytes)
    assert raw[0] & 0x20
    assert cache.get("flag") is True


def test_signing_needs_a_secret_or_an_explicit_opt_out(redis_server: RedisServerInfo) -> None:
    with override_settings(SECRET_KEY=""), pytest.raises(ConfigurationError, match="sign"):
        RedisCache(redis_server.url, {"OPTIONS": {"alias": "no-secret"}}).get("k")
    with pytest.raises(ConfigurationError, match="signing_key"):
        RedisCache(redis_server.url, {"OPTIONS": {"signing_key": "k", "sign": False}}).get("k")


# -- rotation ---------------------------------------------------------------------------------

KEY_A, KEY_B, KEY_C = "rotation-key-A" * 4, "rotation-key-B" * 4, "unrelated-key-C" * 4


def test_values_and_sessions_survive_secret_key_rotation(cachewise_caches: dict[str, Any]) -> None:
    with override_settings(SECRET_KEY=KEY_A, SESSION_CACHE_ALIAS="sessions"):
        caches["default"].set("article", {"title": "kept"})
        session = SessionStore()
        session["user_id"] = 42
        session.save()
        session_key = session.session_key
    with override_settings(SECRET_KEY=KEY_C, SESSION_CACHE_ALIAS="sessions"):
        caches["default"].set("forged", {"title": "from an unrelated key"})
    with override_settings(SECRET_KEY=KEY_B, SECRET_KEY_FALLBACKS=[KEY_A], SESSION_CACHE_ALIAS="sessions"):
        assert caches["default"].get("article") == {"title": "kept"}
        assert SessionStore(session_key=session_key)["user_id"] == 42
        assert caches["default"].get("forged", "miss") == "miss"
        caches["default"].set("new", "written under B")
    with override_settings(SECRET_KEY=KEY_B, SECRET_KEY_FALLBACKS=[], SESSION_CACHE_ALIAS="sessions"):
        assert caches["default"].get("new") == "written under B"  # writes use the current key
        assert caches["default"].get("article", "miss") == "miss"  # A retired: its values are misses
        assert SessionStore(session_key=session_key).get("user_id") is None


def test_a_signing_key_list_rotates_like_secret_key_fallbacks(
    redis_server: RedisServerInfo, prefix: str
) -> None:
    make(redis_server, prefix, signing_key="old").set("k", "v")
    rotated = make(redis_server, prefix, signing_key=["new", "old"])
    assert rotated.get("k") == "v"
    rotated.set("k2", "v2")
    assert make(redis_server, prefix, signing_key="new").get("k2") == "v2"
    assert make(redis_server, prefix, signing_key="other").get("k", "miss") == "miss"


def test_the_mac_is_keyed_by_a_derivation_not_the_secret_itself() -> None:
    fmt = ValueFormat(signing_key=derive_signing_key(KEY_A))
    payload = fmt.encode("x")
    assert isinstance(payload, bytes)
    raw_key_signer = Signer([KEY_A.encode()])
    assert payload[1:33] != raw_key_signer.sign(payload[:1] + payload[33:])
    assert derive_signing_key(KEY_A) != derive_signing_key(KEY_B)


def test_rejections_are_counted_each_time_and_logged_at_a_bounded_rate(
    redis_server: RedisServerInfo, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make(redis_server, prefix, alias="signing-log-tests", log_interval=60.0)
    cache.get_client().set(cache.make_and_validate_key("forged"), bytes((0xC1,)) + pickle.dumps("x"))
    before = metrics.snapshot().get(("error", "signing-log-tests", "-"), 0.0)
    with caplog.at_level("WARNING", logger="cachewise.resilience"):
        for _ in range(50):
            assert cache.get("forged", "miss") == "miss"
    assert metrics.snapshot()[("error", "signing-log-tests", "-")] - before == 50
    lines = [record for record in caplog.records if "not signed by a known key" in record.getMessage()]
    assert len(lines) == 1, [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize("key", [b"", b"k", b"k" * 64, b"k" * 65, bytes(range(256))])
def test_the_precomputed_hmac_is_rfc_2104_hmac_sha256(key: bytes) -> None:
    import hmac

    from cachewise.backends.signing import hmac_sha256

    for message in (b"", b"x", bytes(range(256)) * 40):
        assert hmac_sha256(key)(message) == hmac.digest(key, message, "sha256")
