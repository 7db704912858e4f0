"""Keys of a batch are made and checked as if one at a time.

``get_many``, ``set_many`` and the ORM's reads build the full keys of a batch in a few passes over
all of them (a per-key check was a tenth of a 1,000-row read). These properties hold that fast
path to the one-key path: the same full keys, and a ``CacheKeyWarning`` exactly when one key of
the batch would raise it alone.
"""

from __future__ import annotations

import warnings

from django.core.cache import caches
from django.core.cache.backends.base import CacheKeyWarning
from hypothesis import given
from hypothesis import strategies as st

from cachewise.backends.redis import RedisCache

#: Printable ASCII, the characters Django flags (control, space, DEL), and some beyond ASCII.
_CHARACTERS = st.one_of(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.sampled_from(["\x00", "\t", "\n", " ", "\x7f", "é", "\u00a0", "\u2028", "日"]),
)
_KEYS = st.lists(st.text(_CHARACTERS, max_size=40) | st.integers(0, 10**30).map(str), max_size=12)


def _warned(make: object) -> tuple[object, bool]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = make()  # type: ignore[operator]
    return result, any(issubclass(w.category, CacheKeyWarning) for w in caught)


@given(keys=_KEYS, long_key=st.booleans())
def test_a_batch_of_keys_is_made_and_checked_as_each_key_alone(keys: list[str], long_key: bool) -> None:
    cache = caches["default"]
    assert isinstance(cache, RedisCache)
    if long_key:
        keys = [*keys, "k" * 260]
    one_by_one, warned_alone = _warned(lambda: [cache.make_and_validate_key(key) for key in keys])
    together, warned_together = _warned(lambda: cache.make_and_validate_keys(keys))
    assert together == one_by_one
    assert warned_together == warned_alone


def test_the_delete_character_and_a_space_in_one_key_of_a_batch_warn() -> None:
    cache = caches["default"]
    assert isinstance(cache, RedisCache)
    for bad in ("del\x7fete", "two words"):
        _, warned = _warned(lambda bad=bad: cache.make_and_validate_keys(["fine", bad, "also:fine"]))
        assert warned, bad
    _, warned = _warned(lambda: cache.make_and_validate_keys(["fine", "café", "日本"]))
    assert not warned
