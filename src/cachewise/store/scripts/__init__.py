"""Every Lua script cachewise runs on Redis, and the one way they are run.

The sources live in this package, grouped by what they serve (:mod:`.items`: locks and fenced
fills of one item; :mod:`.versions`: version counters and stamped ORM entries; :mod:`.counts`:
counters, metrics batches, budgets). Each is a :class:`Script`, run by:

* :func:`run`: ``EVALSHA``; when the server answers ``NOSCRIPT`` (restarted, failed over, or
  ``SCRIPT FLUSH``), ``SCRIPT LOAD`` once and ``EVALSHA`` again. Never ``EVAL`` (that would send
  the source on every call) and never redis-py's ``Script`` objects (they add a ``SCRIPT EXISTS``
  round trip to every pipeline).
* :func:`run_many`: the pipelined variant, many calls of one script in one round trip; calls
  answered ``NOSCRIPT`` are loaded once and only those are sent again (one more round trip).
  :func:`run_then` pipelines one call with a command after it (``WAIT``).
* :func:`arun`: :func:`run` for redis-py's asyncio clients.

Errors are redis-py's own: callers run these under the alias' failure policy
(:meth:`cachewise.resilience.Resilience.call`), which translates them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from cachewise.store.scripts.packed import execute

__all__ = ["REGISTRY", "Script", "arun", "run", "run_many", "run_then"]

#: Every script by name, filled as the modules defining them are imported (tests walk it).
REGISTRY: dict[str, Script] = {}


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1 (what ``EVALSHA`` names it by)."""

    name: str
    source: str
    sha: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)
        if REGISTRY.setdefault(self.name, self) is not self:
            raise ValueError(f"two scripts named {self.name!r}")


def run(
    client: Any, script: Script, keys: Sequence[Any], args: Sequence[Any], *, packed: bool = False
) -> Any:
    """Run ``script`` on ``client``: EVALSHA, and once more after SCRIPT LOAD on NOSCRIPT.

    ``packed``: let hiredis pack the command (:func:`.packed.execute`), for calls of thousands
    of arguments where redis-py's per-argument packing would cost most of the round trip.
    """
    send = execute if packed else _execute_command
    try:
        return send(client, "EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        client.script_load(script.source)  # every primary, on a Cluster client
        return send(client, "EVALSHA", script.sha, len(keys), *keys, *args)


def _execute_command(client: Any, *command: Any) -> Any:
    return client.execute_command(*command)


def run_many(client: Any, script: Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
    """Run ``script`` once per ``(keys, args)`` in one pipelined round trip; return the replies.

    Only the calls the server answered NOSCRIPT are sent again (after one SCRIPT LOAD), so a
    script flushed half-way through a batch never runs a call twice. Another error reply raises
    (the first one, as redis-py's pipelines do) once every call has been answered.
    """
    replies = _pipelined(client, script, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        client.script_load(script.source)
        for i, reply in zip(missing, _pipelined(client, script, [calls[i] for i in missing]), strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _pipelined(
    client: Any, script: Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    return list(pipe.execute(raise_on_error=False))


def run_then(
    client: Any, script: Script, keys: Sequence[Any], args: Sequence[Any], command: Sequence[Any]
) -> tuple[Any, Any]:
    """Run ``script`` and then ``command`` (``WAIT``, say) in one pipelined round trip.

    On NOSCRIPT the script did not run: load it once and send both again.
    """

    def send() -> list[Any]:
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))

    replies = send()
    if isinstance(replies[0], NoScriptError):
        client.script_load(script.source)
        replies = send()
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies[0], replies[1]


async def arun(client: Any, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """:func:`run` on a redis-py asyncio client."""
    try:
        return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script.source)
        return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
