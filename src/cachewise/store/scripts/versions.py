"""Scripts of version counters: ``Namespace`` versions, ORM counters and stamped entries, and the
generation of ``clear()``.

Every counter starts at the server's clock in microseconds (``TIME``), never at 1, and a bump
sets it to ``max(current + 1, now)``: a counter that was evicted (or expired, or lost in a
restart) restarts *above* every value it held before, so keys or stamps built with an old value
never become current again (unless it was bumped more than a million times a second).
"""

from __future__ import annotations

from . import Script
from .clock import NOW_US, NOW_US_FUNCTION
from .items import SETTLED_FENCE_LUA

__all__ = [
    "CLEAR_GENERATION",
    "INCARNATION",
    "PACKED_FILL",
    "PACKED_READ",
    "STAMPED_BUMP",
    "STAMPED_FILL",
    "STAMPED_FILL_MANY",
    "STAMPED_PEEK_OR_LOCK",
    "STAMPED_READ",
    "VERSIONED_GET",
    "VERSION_BUMP",
    "VERSION_CLOCK",
    "VERSION_GET",
]

# Read a version counter, creating it at "now" when missing. ARGV ttl: ms, or '0' for none.
_VERSION_INIT = (
    "local function version_of(key, ttl) "
    "  local v = redis.call('GET', key) "
    "  if v then return v end " + NOW_US + "  if ttl == '0' then redis.call('SET', key, now, 'NX') "
    "  else redis.call('SET', key, now, 'NX', 'PX', ttl) end "
    "  return redis.call('GET', key) "
    "end "
)

# KEYS: version key. ARGV: ttl ms|'0'.
VERSION_GET = Script("version_get", _VERSION_INIT + "return version_of(KEYS[1], ARGV[1])")

# Read a version counter and the server clock (microseconds) in one round trip. A version is
# never below the server time of its last bump (bumps set max(current + 1, now)), so a caller
# can tell whether the scope was bumped after a moment it measured. KEYS: version key.
VERSION_CLOCK = Script(
    "version_clock",
    _VERSION_INIT + "local v = version_of(KEYS[1], ARGV[1]) "
    "local c = redis.call('TIME') "
    "return {v, c[1] .. string.sub('000000' .. c[2], -6)}",
)

# Bump: max(current + 1, now). Atomic, so concurrent bumps return distinct versions.
VERSION_BUMP = Script(
    "version_bump",
    NOW_US + "local v = redis.call('GET', KEYS[1]) "
    "if v and tonumber(v) >= tonumber(now) then return redis.call('INCR', KEYS[1]) end "
    "if ARGV[1] == '0' then redis.call('SET', KEYS[1], now) "
    "else redis.call('SET', KEYS[1], now, 'PX', ARGV[1]) end "
    "return tonumber(now)",
)

# Read the version and the value stored under it in one round trip. ARGV: ttl, the full value
# key built with a placeholder version, the placeholder's "v<digits>" segment. The value key is
# derived inside the script, so this is for a single Redis server (two trips on Cluster).
VERSIONED_GET = Script(
    "versioned_get",
    _VERSION_INIT + "local v = version_of(KEYS[1], ARGV[1]) "
    "local i, j = string.find(ARGV[2], ARGV[3], 1, true) "
    "local key = string.sub(ARGV[2], 1, i - 1) .. 'v' .. v .. string.sub(ARGV[2], j + 1) "
    "return {v, redis.call('GET', key)}",
)

# Stamped entries (ORM rows and lists, page stamps): the entries and the counters they depend on
# at one instant. KEYS: ARGV[1] entry keys, then counters. ARGV: number of entries, counter ttl
# in seconds. Missing counters are created at "now" (the clock is read only when one is missing).
STAMPED_READ = Script(
    "stamped_read",
    NOW_US_FUNCTION
    + """
local n = tonumber(ARGV[1])
local out = redis.call('MGET', unpack(KEYS))
local now = nil
for i = n + 1, #KEYS do
  if not out[i] then
    now = now or now_us()
    redis.call('SET', KEYS[i], now, 'EX', ARGV[2])
    out[i] = now
  end
end
return out
""",
)

# The page cache's read: the entry and its counters at one instant (KEYS 1..n, the entry
# first, as a plain MGET); when the entry is missing, also take its lock (KEYS[n + 1]) and
# settle its fence (KEYS[n + 2], created at "now" when missing) as ACQUIRE_READ does, so the
# miss renders without another round trip. ARGV: token, lease ms, fence ttl ms. Answers the
# MGET, then the fence when this call took the lock, '' when another caller holds it.
STAMPED_PEEK_OR_LOCK = Script(
    "stamped_peek_or_lock",
    SETTLED_FENCE_LUA
    + """
local n = #KEYS - 2
local out = redis.call('MGET', unpack(KEYS, 1, n))
if out[1] then return out end
if redis.call('SET', KEYS[n + 1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  out[n + 1] = settled_fence(KEYS[n + 2], ARGV[3])
else
  out[n + 1] = ''
end
return out
""",
)

# Bump counters: each to max(current + 1, now), with a fresh ttl. KEYS: counters. ARGV: ttl (s).
STAMPED_BUMP = Script(
    "stamped_bump",
    NOW_US
    + """
for _, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v and tonumber(v) >= tonumber(now) then redis.call('INCR', key)
  else redis.call('SET', key, now) end
  redis.call('EXPIRE', key, ARGV[1])
end
return #KEYS
""",
)

# Store ARGV[2] under KEYS[1] for ARGV[1] seconds only if KEYS[2..] still hold ARGV[3..].
STAMPED_FILL = Script(
    "stamped_fill",
    """
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
return 1
""",
)

# The opening of both fenced batch fills: store nothing unless every shared counter (the first
# ARGV[2] keys) still holds its stamp; then walk the rest from KEYS[shared + 1], ARGV[shared + 3].
_SHARED_STAMPS_HOLD = """local shared = tonumber(ARGV[2])
for i = 1, shared do
  if redis.call('GET', KEYS[i]) ~= ARGV[2 + i] then return 0 end
end
local stored, k, a = 0, shared + 1, shared + 3
"""

# Shared counters once, then per entry its own counter: store only where all still match.
# KEYS: shared counters (ARGV[2] of them), then (entry key, own counter key) pairs.
# ARGV: ttl, number of shared counters, their stamp values, then (own stamp, payload) pairs.
STAMPED_FILL_MANY = Script(
    "stamped_fill_many",
    """
"""
    + _SHARED_STAMPS_HOLD
    + """while k < #KEYS do
  if redis.call('GET', KEYS[k + 1]) == ARGV[a] then
    redis.call('SET', KEYS[k], ARGV[a + 1], 'EX', ARGV[1])
    stored = stored + 1
  end
  k = k + 2
  a = a + 2
end
return stored
""",
)

# Packed rows (CachedRows): a pointer per row, the ref of the pack holding it (the end of the
# pack's key; the reader adds the head, and finds the row in the pack by its id). KEYS: ARGV[1] pointers, then
# counters (a row's own version per pointer, then the shared ones). ARGV: number of pointers,
# counter ttl (s). Missing counters are created at "now" (as STAMPED_READ). Returns {the
# pointers, the counters}, read at one instant; the packs are read after (written once under a
# random key, a pack names one content for as long as it can be read).
PACKED_READ = Script(
    "packed_read",
    NOW_US_FUNCTION
    + """
local n = tonumber(ARGV[1])
local pointers = redis.call('MGET', unpack(KEYS, 1, n))
local counters = redis.call('MGET', unpack(KEYS, n + 1))
local now = nil
for i = 1, #counters do
  if not counters[i] then
    now = now or now_us()
    redis.call('SET', KEYS[n + i], now, 'EX', ARGV[2])
    counters[i] = now
  end
end
return {pointers, counters}
""",
)

# Fenced fill of packs (rows read at one instant): nothing when a shared counter moved; else a
# pointer for each row whose own counter still holds its stamp, and each pack a row points at.
# KEYS: shared counters (ARGV[2] of them), then per pack: the pack, its pointer keys, its rows'
# own counters (same order). ARGV: ttl (s), number of shared counters, their stamps, then per
# pack: its number of rows, its payload, its ref (the end of its key), its rows' own stamps.
# Returns which pointers were written: "1" or "0" per row, in KEYS order (0, the integer, when a
# shared counter moved: nothing was). A pointer is the pack's 18-digit ref, the same string for
# every row of the pack: on Redis 6.2 a script's value of more than 64 bytes is allocated per
# call, and full-key pointers made the SETs of a 1,000-row fill 2.5x slower (4.8 ms against
# 1.9 ms on the server); a pointer made per row ("<index><ref>") cost 0.4 ms more.
# The own counters of a pack are read with ONE MGET: a GET per row cost about a quarter of the
# script's time on the server (INFO commandstats, 1,000 rows).
PACKED_FILL = Script(
    "packed_fill",
    """
"""
    + _SHARED_STAMPS_HOLD
    + """local written = {}
while k <= #KEYS do
  local pack, count, payload, ref = KEYS[k], tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local owns = redis.call('MGET', unpack(KEYS, k + 1 + count, k + 2 * count))
  local any = false
  a = a + 3
  for index = 1, count do
    if owns[index] == ARGV[a] then
      redis.call('SET', KEYS[k + index], ref, 'EX', ARGV[1])
      written[#written + 1] = '1'
      any = true
    else
      written[#written + 1] = '0'
    end
    a = a + 1
  end
  if any then redis.call('SET', pack, payload, 'EX', ARGV[1]) end
  k = k + 1 + 2 * count
end
return table.concat(written)
""",
)

# A new server process (restart, possibly from an older snapshot, or a promoted replica) moves
# the global ORM epoch. KEYS: incarnation key, global ORM epoch. ARGV: epoch ttl (s).
# Returns 1 when it moved the epoch.
INCARNATION = Script(
    "incarnation",
    "local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') "
    "local seen = redis.call('GET', KEYS[1]) "
    "if seen == run_id then return 0 end "
    "if not seen then redis.call('SET', KEYS[1], run_id) return 0 end "
    + NOW_US
    + "local g = redis.call('GET', KEYS[2]) "
    "if g and tonumber(g) >= tonumber(now) then redis.call('INCR', KEYS[2]) "
    "else redis.call('SET', KEYS[2], now) end "
    "redis.call('EXPIRE', KEYS[2], ARGV[1]) "
    "redis.call('SET', KEYS[1], run_id) "
    "return 1",
)

# The generation of OPTIONS["clear"] = "generation". KEYS: the generation key. Read it
# (created at "now" when missing), or with ARGV[1] = '1' advance it to max(current + 1, now).
CLEAR_GENERATION = Script(
    "clear_generation",
    NOW_US
    + """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
now = tonumber(now)
if ARGV[1] == '1' then
  current = math.max(current + 1, now)
elseif current == 0 then
  current = now
else
  return string.format('%.0f', current)
end
redis.call('SET', KEYS[1], string.format('%.0f', current))
return string.format('%.0f', current)
""",
)
