"""Redis commands packed by hiredis: big ORM argument lists without redis-py's per-argument cost.

:func:`execute` runs one command; :func:`send` and :func:`replies` split a batch of commands in
two, so a caller that does not need the answers at once (an ORM fill) can send them and have the
answers read later, off its own path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Sent", "execute", "packer", "replies", "send"]


def execute(client: Any, *args: Any) -> Any:
    """Run one command, packed by hiredis when it is installed.

    redis-py packs each argument in Python (~1 us each): for the 2,000-key read of 1,000 rows
    that is most of the round trip. The connection is handled as redis-py does it (taken from
    the pool, dropped on an I/O error, always given back).
    """
    import redis

    pack = packer(client)
    if pack is None:
        return client.execute_command(*args)
    packed = pack(args)
    pool = client.connection_pool
    connection: Any = pool.get_connection()
    try:
        connection.send_packed_command([packed])
        return connection.read_response()
    except redis.exceptions.ResponseError:
        raise
    except BaseException:
        connection.disconnect()  # the reply may still be on the wire: never reuse the socket
        raise
    finally:
        pool.release(connection)


def packer(client: Any) -> Callable[[tuple[Any, ...]], bytes] | None:
    """hiredis' ``pack_command`` where it may pack commands for ``client``, else None: hiredis is
    missing, or ``client`` is not a plain pooled ``redis.Redis`` (a subclass or a single-connection
    client runs commands its own way)."""
    import redis

    if type(client) is not redis.Redis or client.connection is not None:
        return None
    return _pack_command


@dataclass(frozen=True)
class Sent:
    """Commands sent on ``connection`` (taken from ``pool``) whose replies are still unread."""

    connection: Any
    pool: Any
    count: int


def send(client: Any, commands: Sequence[Sequence[Any]]) -> Sent | None:
    """Send ``commands`` on one pooled connection, in one write, without reading the replies.

    None where this cannot be done (hiredis missing, a client that is not a plain
    ``redis.Redis``): run the commands with :func:`execute`. The connection stays out of the
    pool until :func:`replies` reads every answer; a failed send drops it.
    """
    pack = packer(client)
    if pack is None:
        return None
    packed = [pack(tuple(command)) for command in commands]
    pool = client.connection_pool
    connection: Any = pool.get_connection()
    try:
        connection.send_packed_command(packed)
    except BaseException:
        connection.disconnect()
        pool.release(connection)
        raise
    return Sent(connection, pool, len(packed))


def replies(sent: Sent) -> list[Any]:
    """The replies of :func:`send`'s commands, in order; an error reply comes as its
    ``ResponseError`` (the rest are still read). An I/O error raises, after the connection is
    dropped (a reply may still be on the wire). The connection always goes back to its pool."""
    import redis

    connection = sent.connection
    answers: list[Any] = []
    try:
        for _ in range(sent.count):
            try:
                answers.append(connection.read_response())
            except redis.exceptions.ResponseError as error:  # read whole: the socket stays in step
                answers.append(error)
    except BaseException:
        connection.disconnect()
        raise
    finally:
        sent.pool.release(connection)
    return answers


def _hiredis_pack() -> Callable[[tuple[Any, ...]], bytes] | None:
    try:
        from hiredis import pack_command
    except ImportError:  # pragma: no cover - hiredis is a dependency of the [hiredis] extra
        return None
    return pack_command


_pack_command = _hiredis_pack()
