"""Counter ids and the index members that stand for them: ``encode_id`` / ``decode_id``.

Apart from :mod:`.counter` because the durable flush (:mod:`.batches`) decodes the members it
drains, and :mod:`.counter` calls that flush.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from cachewise.keys import encode_part

__all__ = ["CounterId", "decode_id", "encode_id"]

CounterId = int | str

_INT = re.compile(r"-?\d+\Z")
_MAX_ID_LENGTH = 120


def encode_id(counter_id: CounterId) -> str:
    """The index member of ``counter_id`` (make_key's int/str encoding), checked."""
    if not isinstance(counter_id, (int, str)) or isinstance(counter_id, bool):
        raise TypeError(f"counter ids are int or str, got {type(counter_id).__name__} {counter_id!r:.40}")
    member = encode_part(counter_id)
    if len(member) > _MAX_ID_LENGTH:
        raise ValueError(f"counter id {counter_id!r:.40} is too long: keep ids under 100 characters")
    return member


def decode_id(member: str | bytes) -> CounterId:
    """The id an index member stands for (the inverse of make_key's int/str encoding)."""
    text = member.decode() if isinstance(member, bytes) else member
    if text.startswith("'"):
        return unquote(text[1:])
    return int(text) if _INT.match(text) else text
