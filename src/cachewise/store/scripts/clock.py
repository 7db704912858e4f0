"""The server clock in Lua: scripts read time from Redis (``TIME``), never from the client.

Version counters, fences and lock deadlines are compared across processes and machines; one
clock (the server's) means no client's skew can make a recreated counter land below an old one.
Microseconds stay a decimal string in Lua (its numbers are doubles: exact to 2**53, but
``tostring`` would print them in exponent form).
"""

from __future__ import annotations

__all__ = ["NOW_MS", "NOW_US", "NOW_US_FUNCTION"]

#: Defines ``now``: the server clock in microseconds, as a decimal string.
NOW_US = "local t = redis.call('TIME') local now = t[1] .. string.sub('000000' .. t[2], -6) "

#: Defines ``now_us()``, the same as a function, for scripts that need the clock only sometimes.
NOW_US_FUNCTION = (
    "local function now_us() local t = redis.call('TIME') "
    "return t[1] .. string.sub('000000' .. t[2], -6) end "
)

#: Defines ``now``: the server clock in milliseconds, as a number.
NOW_MS = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
