"""Counter increments confirmed by replicas (``Counter(..., replicas=1)``): ``WAIT`` after the script.

Redis replicates asynchronously: an increment the primary acknowledged and had not yet sent to a
replica is lost when that replica is promoted. With ``replicas=N`` the increment script and
``WAIT N <ms>`` go in one pipeline (one round trip): ``incr`` returns once N replicas have it,
and raises :class:`~cachewise.exceptions.UnconfirmedWriteError` when they did not within
``replica_timeout`` (the primary has the increment; retrying would count it twice). Single
servers and Sentinel only: on Cluster, ``WAIT`` would have to go to the node of the counter's
slot, which this does not do, so it is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cachewise.exceptions import ConfigurationError, UnconfirmedWriteError
from cachewise.store.scripts import Script, run_then

if TYPE_CHECKING:
    from cachewise.store.redis import RedisStore

    from .counter import Counter

__all__ = ["confirmed"]


def confirmed(store: RedisStore, counter: Counter, script: Script, keys: list[str], args: list[Any]) -> Any:
    """Run ``script`` then ``WAIT counter.replicas`` in one round trip; return the script's reply."""
    if store.cluster:
        raise ConfigurationError(f"{counter!r}: replicas= is not supported on Redis Cluster")
    timeout_ms = max(1, int(counter.replica_timeout * 1000))

    def run() -> tuple[Any, int]:
        reply, acked = run_then(store.client, script, keys, args, ("WAIT", counter.replicas, timeout_ms))
        return reply, int(acked)

    reply, acked = store.call("incr", run)
    if acked < counter.replicas:
        raise UnconfirmedWriteError(
            f"{counter!r}: the increment is on the primary but {acked} of {counter.replicas} "
            f"replicas confirmed it within {timeout_ms} ms; it is lost if the primary fails now. "
            "Do not retry it (it would count twice)."
        )
    return reply
