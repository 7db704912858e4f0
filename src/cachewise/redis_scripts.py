"""Lua scripts for version counters and counters (the Redis fast path of versions and counters).

Each script is one atomic round trip. Versions start at the server's clock in microseconds
(``TIME``), never at 1: a version counter that was evicted restarts *above* every value it held
before (unless it was bumped more than a million times a second), so keys built with an old
version can never become live again.
"""

from __future__ import annotations

__all__ = ["SCRIPTS"]

# The server clock in microseconds as a decimal string (Lua numbers are doubles: stay in text).
_NOW_US = "local t = redis.call('TIME') local now = t[1] .. string.sub('000000' .. t[2], -6) "

# Read a version counter, creating it at "now" when missing. KEYS: version key. ARGV: ttl ms|'0'.
_VERSION_INIT = (
    "local function version_of(key, ttl) "
    "  local v = redis.call('GET', key) "
    "  if v then return v end " + _NOW_US + "  if ttl == '0' then redis.call('SET', key, now, 'NX') "
    "  else redis.call('SET', key, now, 'NX', 'PX', ttl) end "
    "  return redis.call('GET', key) "
    "end "
)

VERSION_GET = _VERSION_INIT + "return version_of(KEYS[1], ARGV[1])"

# Bump: max(current + 1, now). Atomic, so concurrent bumps return distinct versions.
VERSION_BUMP = (
    _NOW_US + "local v = redis.call('GET', KEYS[1]) "
    "if v and tonumber(v) >= tonumber(now) then return redis.call('INCR', KEYS[1]) end "
    "if ARGV[1] == '0' then redis.call('SET', KEYS[1], now) "
    "else redis.call('SET', KEYS[1], now, 'PX', ARGV[1]) end "
    "return tonumber(now)"
)

# Read the version and the value stored under it in one round trip. ARGV: ttl, the full value
# key built with a placeholder version, the placeholder's "v<digits>" segment. The value key is
# derived inside the script, so this is for a single Redis server (two trips on Cluster).
VERSIONED_GET = (
    _VERSION_INIT + "local v = version_of(KEYS[1], ARGV[1]) "
    "local i, j = string.find(ARGV[2], ARGV[3], 1, true) "
    "local key = string.sub(ARGV[2], 1, i - 1) .. 'v' .. v .. string.sub(ARGV[2], j + 1) "
    "return {v, redis.call('GET', key)}"
)

# Counter increment: INCRBY, and on the increment that created the key set its TTL and index it.
# KEYS: counter key, index set. ARGV: amount, ttl ms|'0', member.
COUNTER_INCR = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then
  if ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  redis.call('SADD', KEYS[2], ARGV[3])
end
return n
"""

# Many increments in one call. KEYS: index, counter keys. ARGV: ttl ms|'0', then (member, amount)
# pairs in counter key order. Returns the new counts.
COUNTER_INCR_MANY = """
local out = {}
for i = 2, #KEYS do
  local amount = tonumber(ARGV[2 * i - 1])
  local n = redis.call('INCRBY', KEYS[i], amount)
  if n == amount then
    if ARGV[1] ~= '0' then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
    redis.call('SADD', KEYS[1], ARGV[2 * i - 2])
  end
  out[i - 1] = n
end
return out
"""

# Drain a batch: for each counter read its count, delete it and drop it from the index, all in
# one atomic step, so an increment lands either before (drained now) or after (re-creates the key
# and re-indexes it for the next flush). KEYS: index, counter keys. ARGV: members (same order).
COUNTER_DRAIN = """
local out = {}
for i = 2, #KEYS do
  local v = redis.call('GET', KEYS[i])
  redis.call('DEL', KEYS[i])
  redis.call('SREM', KEYS[1], ARGV[i - 1])
  out[i - 1] = v or '0'
end
return out
"""

# Put back counts whose application failed. KEYS: index, counter keys. ARGV: ttl, then
# (member, amount) pairs in counter key order.
COUNTER_RESTORE = """
for i = 2, #KEYS do
  local n = redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  if ARGV[1] ~= '0' and redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
  redis.call('SADD', KEYS[1], ARGV[2 * i - 2])
end
return 1
"""

SCRIPTS = {
    "version_get": VERSION_GET,
    "version_bump": VERSION_BUMP,
    "versioned_get": VERSIONED_GET,
    "counter_incr": COUNTER_INCR,
    "counter_incr_many": COUNTER_INCR_MANY,
    "counter_drain": COUNTER_DRAIN,
    "counter_restore": COUNTER_RESTORE,
}
