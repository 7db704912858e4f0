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

# The durable flush (see cachewise.counter_batches). A batch lives in a hash KEYS "batch" until
# its counts are in the database; the "pending" sorted set maps each batch id to the deadline
# (server ms) of its flusher's lease. The deadline doubles as the lease's token: a claim always
# sets a deadline later than the expired one, so a flusher whose lease was taken over can tell.
_NOW_MS = (
    "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
)

# Move a batch of counts into a pending batch, atomically (as COUNTER_DRAIN). KEYS: index,
# pending, batch, counter keys. ARGV: batch id, lease ms, members (counter key order).
# Returns {deadline, counts...}.
COUNTER_DRAIN_BATCH = (
    _NOW_MS
    + """
local out = {}
local moved = 0
for i = 4, #KEYS do
  local v = redis.call('GET', KEYS[i]) or '0'
  redis.call('DEL', KEYS[i])
  redis.call('SREM', KEYS[1], ARGV[i - 1])
  if v ~= '0' then
    redis.call('HSET', KEYS[3], ARGV[i - 1], v)
    moved = moved + 1
  end
  out[i - 2] = v
end
local deadline = now + tonumber(ARGV[2])
if moved > 0 then redis.call('ZADD', KEYS[2], deadline, ARGV[1]) end
out[1] = deadline
return out
"""
)

# Take over the lease of up to ARGV[2] pending batches whose lease expired. KEYS: pending.
# ARGV: lease ms, max batches. Returns {deadline, {batch ids}}.
COUNTER_BATCH_CLAIM = (
    _NOW_MS
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local deadline = now + tonumber(ARGV[1])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], deadline, id) end
return {deadline, ids}
"""
)

# Forget a batch whose counts are committed to the database. KEYS: pending, batch. ARGV: id.
COUNTER_BATCH_DONE = """
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# Put a batch whose application failed back into the live counts, if the caller still holds its
# lease. KEYS: index, pending, batch, counter keys. ARGV: batch id, deadline, ttl ms|'0',
# members (counter key order). Returns 1 when restored, 0 when the lease was lost.
COUNTER_BATCH_RESTORE = """
local held = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not held or tonumber(held) ~= tonumber(ARGV[2]) then return 0 end
for i = 4, #KEYS do
  local v = redis.call('HGET', KEYS[3], ARGV[i])
  if v then
    redis.call('INCRBY', KEYS[i], v)
    if ARGV[3] ~= '0' and redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
    redis.call('SADD', KEYS[1], ARGV[i])
  end
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[1])
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
    "counter_drain_batch": COUNTER_DRAIN_BATCH,
    "counter_batch_claim": COUNTER_BATCH_CLAIM,
    "counter_batch_done": COUNTER_BATCH_DONE,
    "counter_batch_restore": COUNTER_BATCH_RESTORE,
}
