"""make_key: the documented format, and properties over arbitrary inputs (hypothesis).

The properties are the contract of ``cachewise.keys``: every input gives a key memcached accepts;
two inputs share a key exactly when they are equal *as the encoding defines equality* (by type and
value, lists and tuples alike, sets and dicts unordered); and a key never depends on the process
that built it (hash randomisation, insertion order).
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import os
import pickle
import re
import string
import subprocess
import sys
import uuid
from collections import OrderedDict
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache.backends.base import memcache_key_warnings
from hypothesis import given, settings
from hypothesis import strategies as st

from cachewise.exceptions import InvalidKeyError
from cachewise.keys import MAX_KEY_LENGTH, encode_part, make_key, private_key, validate_namespace

# --------------------------------------------------------------------------- strategies

_SEGMENT = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,12}", fullmatch=True).filter(
    lambda s: not (s[0] == "v" and s[1:].isdigit() and s[1:].isascii())
)
NAMESPACES = st.lists(_SEGMENT, min_size=1, max_size=3).map(":".join).filter(lambda ns: len(ns) <= 64)
VERSIONS = st.integers(min_value=0, max_value=2**63 - 1)
# Any code point, lone surrogates and control characters included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)
LONG_TEXT = st.text(st.characters(exclude_categories=()), min_size=200, max_size=400)
OFFSETS = st.sampled_from([None, datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=-5))])

HASHABLE_ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**1020, max_value=2**1100),  # hex-encoded beyond 1024 bits
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False),
    ANY_TEXT,
    st.sampled_from(["None", "True", "False", "1", "-1", "", "a b", "a:b", "a,b", "~f1.0", "'x"]),
    st.dates(),
    st.datetimes(timezones=OFFSETS),
    st.times(timezones=OFFSETS),
    st.uuids(),
    st.binary(max_size=20),
)
PORTABLE_ATOMS = st.one_of(HASHABLE_ATOMS, LONG_TEXT, st.floats())  # NaN too: all NaNs share a key
MODELS = st.builds(Group, pk=st.integers(1, 10**6)) | st.builds(Permission, pk=st.integers(1, 10**6))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(HASHABLE_ATOMS, children, max_size=4),
        st.frozensets(HASHABLE_ATOMS, max_size=4),
        st.sets(HASHABLE_ATOMS, max_size=4),
    )


PORTABLE_PARTS = st.recursive(PORTABLE_ATOMS, _containers, max_leaves=8)
PARTS = st.recursive(st.one_of(PORTABLE_ATOMS, MODELS), _containers, max_leaves=8)
KEY_INPUTS = st.tuples(NAMESPACES, VERSIONS, st.lists(PARTS, max_size=4))
PORTABLE_KEY_INPUTS = st.tuples(NAMESPACES, VERSIONS, st.lists(PORTABLE_PARTS, max_size=4))


def canonical(value: Any) -> Any:
    """The value as the encoding sees it: a (type, value) tree, so 1, True and 1.0 differ."""
    simple: list[tuple[type, str, Any]] = [
        (bool, "bool", lambda v: v),
        (int, "int", lambda v: v),
        (str, "str", lambda v: v),
        (float, "float", repr),
        (decimal.Decimal, "decimal", str),
        (datetime.datetime, "datetime", lambda v: v.isoformat()),
        (datetime.date, "date", lambda v: v.isoformat()),
        (datetime.time, "time", lambda v: v.isoformat()),
        (uuid.UUID, "uuid", lambda v: v.hex),
        (bytes, "bytes", lambda v: v),
    ]
    if value is None:
        return ("none",)
    for kind, tag, convert in simple:
        if isinstance(value, kind):
            return (tag, convert(value))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(canonical(item) for item in value))
    if isinstance(value, dict):
        return ("map", frozenset((canonical(k), canonical(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(canonical(item) for item in value))
    return ("model", value._meta.label_lower, canonical(value.pk))


def canonical_input(namespace: str, version: int, parts: list[Any]) -> Any:
    return (namespace, version, canonical(parts))


def assert_memcached_safe(key: str) -> None:
    assert len(key) <= MAX_KEY_LENGTH
    raw = key.encode("utf-8")
    assert len(raw) <= 250
    assert all(0x21 <= byte <= 0x7E for byte in raw), key
    # What Django itself would warn about for this key under a real KEY_PREFIX and VERSION.
    assert list(memcache_key_warnings(f"myproject:123:{key}")) == []


# --------------------------------------------------------------------------- properties


@given(KEY_INPUTS)
def test_every_input_gives_a_memcached_safe_key(data: tuple[str, int, list[Any]]) -> None:
    namespace, version, parts = data
    key = make_key(namespace, *parts, version=version)
    assert_memcached_safe(key)
    assert key.startswith(f"{namespace}:v{version}")


@given(st.lists(KEY_INPUTS, min_size=2, max_size=6))
def test_keys_are_equal_exactly_when_inputs_are_equal(inputs: list[tuple[str, int, list[Any]]]) -> None:
    seen: dict[str, Any] = {}
    for namespace, version, parts in inputs:
        key = make_key(namespace, *parts, version=version)
        identity = canonical_input(namespace, version, parts)
        assert seen.setdefault(key, identity) == identity, f"{key} built from two different inputs"
    identities = {canonical_input(*item) for item in inputs}
    assert len(identities) == len(seen)


@given(st.lists(st.one_of(LONG_TEXT, st.lists(LONG_TEXT, min_size=1, max_size=3)), min_size=2, max_size=5))
def test_hashed_keys_are_distinct_and_safe(values: list[Any]) -> None:
    keys = {}
    for value in values:
        key = make_key("search", value, 1)
        assert_memcached_safe(key)
        assert "~#" in key  # the long path was taken
        keys[key] = canonical(value)
    assert len(keys) == len({canonical(value) for value in values})


@given(PARTS)
def test_same_input_gives_the_same_key(part: Any) -> None:
    assert make_key("ns", part) == make_key("ns", pickle.loads(pickle.dumps(part)))


def twin(value: Any) -> Any:
    """An equal input built differently: lists and tuples swapped, dicts and sets rebuilt reversed."""
    if isinstance(value, list):
        return tuple(twin(item) for item in value)
    if isinstance(value, tuple):
        return [twin(item) for item in value]
    if isinstance(value, dict):
        return {k: twin(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, (set, frozenset)):
        return type(value)(reversed(list(value)))
    return value


@given(KEY_INPUTS)
def test_equal_inputs_built_differently_share_a_key(data: tuple[str, int, list[Any]]) -> None:
    namespace, version, parts = data
    assert make_key(namespace, *parts, version=version) == make_key(namespace, *twin(parts), version=version)


# Unique by Python equality too: False, 0 and 0.0 are one set element, so a set built from two of
# them keeps whichever came first and the two "shuffled" sets are really different inputs.
@given(st.lists(HASHABLE_ATOMS, max_size=8, unique_by=(canonical, lambda item: item)), st.randoms())
def test_sets_and_dicts_ignore_insertion_order(items: list[Any], random: Any) -> None:
    shuffled = list(items)
    random.shuffle(shuffled)
    assert make_key("ns", set(items)) == make_key("ns", set(shuffled))
    forward = {item: index for index, item in enumerate(items)}
    backward = dict(reversed(list(forward.items())))
    assert make_key("ns", forward) == make_key("ns", backward)


_CHILD = """
import json, pickle, sys
from cachewise.keys import make_key
inputs = pickle.loads(sys.stdin.buffer.read())
print(json.dumps([make_key(ns, *parts, version=version) for ns, version, parts in inputs]))
"""


@settings(max_examples=4, deadline=None)
@given(st.lists(PORTABLE_KEY_INPUTS, min_size=10, max_size=30))
def test_keys_do_not_depend_on_the_process(inputs: list[tuple[str, int, list[Any]]]) -> None:
    expected = [make_key(ns, *parts, version=version) for ns, version, parts in inputs]
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=pickle.dumps(inputs),
            capture_output=True,
            check=False,
            timeout=60,
            env=env,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert json.loads(result.stdout) == expected


# --------------------------------------------------------------------------- the format


def test_format_is_readable_for_plain_inputs() -> None:
    assert make_key("search", "django", 2, version=2) == "search:v2:django:2"
    assert make_key("article") == "article:v1"
    assert make_key("article:views", 42) == "article:views:v1:42"


@pytest.mark.parametrize(
    ("part", "encoded"),
    [
        (42, "42"),
        (-7, "-7"),
        ("hello world", "'hello%20world"),
        ("1", "'1"),
        ("None", "'None"),
        (None, "None"),
        (True, "True"),
        (1.5, "~f1.5"),
        (decimal.Decimal("1.50"), "~D1.50"),
        (datetime.date(2024, 5, 1), "~d2024-05-01"),
        (uuid.UUID(int=255), "~u000000000000000000000000000000ff"),
        (b"\x00\xff", "~b00ff"),
        ([1, "a"], "~l(1,a)"),
        ((1, "a"), "~l(1,a)"),
        ({"b": 2, "a": 1}, "~m(a=1,b=2)"),
        ({3, 1, 2}, "~s(1,2,3)"),
        (2**1024, "~x1" + "0" * 256),
    ],
    ids=lambda value: type(value).__name__,
)
def test_each_type_has_its_documented_encoding(part: Any, encoded: str) -> None:
    assert encode_part(part) == encoded


def test_values_python_calls_equal_get_distinct_keys() -> None:
    confusable = [1, True, 1.0, "1", decimal.Decimal(1), [1], "True", None, "None", 0, False, "", b""]
    keys = {make_key("ns", value) for value in confusable}
    assert len(keys) == len(confusable)


def test_parts_do_not_run_into_each_other() -> None:
    assert make_key("ns", "a", "b") != make_key("ns", "a:b")
    assert make_key("ns", ["a", "b"]) != make_key("ns", ["a,b"])
    assert make_key("ns", "a", "b") != make_key("ns", ["a", "b"])
    assert make_key("ns", {"a": "b=c"}) != make_key("ns", {"a=b": "c"})


def test_namespace_cannot_impersonate_a_version_segment() -> None:
    with pytest.raises(InvalidKeyError, match="looks like a version"):
        make_key("a:v1")
    assert validate_namespace("a:v1x") == "a:v1x"
    assert make_key("a", "v1") == "a:v1:v1"


@pytest.mark.parametrize("namespace", ["", "a b", "a::b", ":a", "a:", "é", "x" * 65, 5])
def test_invalid_namespace_is_refused(namespace: Any) -> None:
    with pytest.raises(InvalidKeyError, match="namespace"):
        make_key(namespace)


@pytest.mark.parametrize("version", [-1, 2**63, True, "1", 1.0])
def test_invalid_version_is_refused(version: Any) -> None:
    with pytest.raises(InvalidKeyError, match="version"):
        make_key("ns", version=version)


@pytest.mark.parametrize(
    "part",
    ["x" * 10_000, "é" * 10_000, " \t\n\x00\x7f" * 100, "日本語のテキスト" * 50, "\ud800", 10**5000],
    ids=["ascii-10k", "latin-10k", "controls", "cjk", "lone-surrogate", "int-5000-digits"],
)
def test_hostile_inputs_still_give_safe_keys(part: Any) -> None:
    key = make_key("ns", part, version=2**63 - 1)
    assert_memcached_safe(key)


def test_long_key_keeps_a_readable_head_and_a_digest() -> None:
    key = make_key("search", "q" * 500)
    assert key.startswith("search:v1:" + "q" * 50)
    _head, digest = key.rsplit("~#", 1)
    assert len(digest) == 32
    assert set(digest) <= set(string.hexdigits)


class Colour(enum.IntEnum):
    RED = 1


class Tag(str, enum.Enum):
    NEWS = "news"


def test_subclasses_are_encoded_as_their_base_type() -> None:
    assert make_key("ns", Colour.RED) == make_key("ns", 1)
    assert make_key("ns", Tag.NEWS) == make_key("ns", "news")
    assert make_key("ns", OrderedDict(b=1, a=2)) == make_key("ns", {"a": 2, "b": 1})


def test_model_instances_are_encoded_by_label_and_pk() -> None:
    assert make_key("ns", Group(pk=7)) == "ns:v1:~oauth.group=7"
    assert make_key("ns", Group(pk=7)) != make_key("ns", Permission(pk=7))


def test_unsaved_model_instance_is_refused() -> None:
    with pytest.raises(InvalidKeyError, match=r"unsaved auth\.Group"):
        make_key("ns", Group(name="editors"))


class Opaque:
    def __str__(self) -> str:
        return "looks-fine"


@pytest.mark.parametrize(
    ("part", "type_name"),
    [
        (Opaque(), "test_keys.Opaque"),
        (object(), "builtins.object"),
        (bytearray(b"x"), "builtins.bytearray"),
        (1j, "builtins.complex"),
        ([1, {"a": object()}], "builtins.object"),
    ],
)
def test_unsupported_types_raise_type_error_naming_the_type(part: Any, type_name: str) -> None:
    with pytest.raises(TypeError, match=type_name.replace(".", r"\.")):
        make_key("ns", part)


# --------------------------------------------------------------------------- private_key


@given(KEY_INPUTS)
def test_private_keys_are_memcached_safe_and_show_only_the_namespace(
    data: tuple[str, int, list[Any]],
) -> None:
    namespace, version, parts = data
    key = private_key(namespace, *parts, version=version)
    assert_memcached_safe(key)
    head = f"{namespace}:v{version}"
    assert key == head if not parts else re.fullmatch(re.escape(head) + r":#[0-9a-f]{32}", key), key


@given(st.lists(KEY_INPUTS, min_size=2, max_size=6))
def test_private_keys_are_equal_exactly_when_inputs_are_equal(
    inputs: list[tuple[str, int, list[Any]]],
) -> None:
    seen: dict[str, Any] = {}
    for namespace, version, parts in inputs:
        key = private_key(namespace, *parts, version=version)
        identity = canonical_input(namespace, version, parts)
        assert seen.setdefault(key, identity) == identity, f"{key} built from two different inputs"
        assert key == make_key(namespace, version=version) or key != make_key(
            namespace, *parts, version=version
        )
    assert len({canonical_input(*item) for item in inputs}) == len(seen)


def test_private_key_hides_the_arguments_unless_readable_keys_is_set(settings: Any) -> None:
    key = private_key("search", "alice@example.com", "private medical query")
    assert "alice" not in key
    assert "medical" not in key
    assert key.startswith("search:v1:#")
    settings.CACHEWISE_READABLE_KEYS = True
    assert private_key("search", "alice@example.com") == make_key("search", "alice@example.com")
