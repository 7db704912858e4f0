"""Scripts of one cached item (value, token lock, fence) and of token locks (``cache.lock()``).

Key layout and the reasons behind each check: :mod:`cachewise.redis_store`.
"""

from __future__ import annotations

from . import Script
from .clock import NOW_US, NOW_US_FUNCTION

__all__ = [
    "ACQUIRE_READ",
    "EXTEND_LOCK",
    "EXTEND_LOCK_BY",
    "FILL",
    "FILL_CAPPED",
    "INVALIDATE",
    "READ",
    "READ_WITH_TTL",
    "RELEASE_LOCK",
    "SETTLE_FENCE",
]

# KEYS: value, lock, fence. The value, the fence and the lock's remaining life (ms).
READ = Script(
    "read",
    """
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[3]), redis.call('PTTL', KEYS[2])}
""",
)

# The opening of both fills: with a token (ARGV[1]), give up unless the lock (KEYS[2]) is still
# ours; ``held`` says whether to release it and tell the waiters at the end.
_HOLDS_THE_LOCK = """local held = false
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
  held = true
end
"""

# KEYS: value, lock, fence. ARGV: token ('' = no lock), fence read before computing, payload,
# ttl in ms ('0' = no expiry). A missing fence never matches (see settle_fence). A stored fill
# drops the fence: a fill still running against it then finds it missing and is refused, and an
# item holds no fence key between misses (fences are recreated above every earlier value).
FILL = Script(
    "fill",
    """
"""
    + _HOLDS_THE_LOCK
    + """local stored = 0
if redis.call('GET', KEYS[3]) == ARGV[2] then
  if ARGV[4] == '0' then redis.call('SET', KEYS[1], ARGV[3])
  else redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
  redis.call('DEL', KEYS[3])
  stored = 1
end
if held then
  redis.call('DEL', KEYS[2])
  if stored == 1 then redis.call('PUBLISH', KEYS[2], 'filled')
  else redis.call('PUBLISH', KEYS[2], 'invalidated') end
end
return stored
""",
)

# FILL with an entry budget (cachewise.store.fill_budget). KEYS: value, lock, fence, budget
# counter. ARGV: as FILL, then entries to count, window ms, entries allowed per window. When the
# fence still matches, count first (the window opens with the first count); over the limit,
# store nothing and tell waiters 'nostore' (they render for themselves). -1: refused.
FILL_CAPPED = Script(
    "fill_capped",
    """
"""
    + _HOLDS_THE_LOCK
    + """local stored = 0
local note = 'invalidated'
if redis.call('GET', KEYS[3]) == ARGV[2] then
  local used = redis.call('INCRBY', KEYS[4], ARGV[5])
  if used == tonumber(ARGV[5]) or redis.call('PTTL', KEYS[4]) < 0 then
    redis.call('PEXPIRE', KEYS[4], ARGV[6])
  end
  if used > tonumber(ARGV[7]) then
    stored, note = -1, 'nostore'
  else
    if ARGV[4] == '0' then redis.call('SET', KEYS[1], ARGV[3])
    else redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
    redis.call('DEL', KEYS[3])
    stored, note = 1, 'filled'
  end
end
if held then
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', KEYS[2], note)
end
return stored
""",
)

#: Compare-and-delete a token lock, then wake its waiters (shared with ``cache.lock()``).
#: KEYS: lock. ARGV: token, the note published to waiters.
RELEASE_LOCK = Script(
    "release_lock",
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[1], ARGV[2])
  return 1
end
return 0
""",
)

#: Compare-and-extend a token lock's lease to ARGV[2] ms (shared with ``cache.lock()``).
EXTEND_LOCK = Script(
    "extend_lock",
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
""",
)

#: Add ARGV[2] ms to the lease if ARGV[1] is still the token (redis-py's extend without replace_ttl).
EXTEND_LOCK_BY = Script(
    "extend_lock_by",
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
return redis.call('PEXPIRE', KEYS[1], ttl + ARGV[2])
""",
)

# Fences live on the server clock in microseconds and only grow: a fence that was evicted is
# recreated above every value it held, so a running fill's fence can never match it again.
#: Defines ``settled_fence(key, ttl)``: the item's fence, created at "now" (PX ``ttl``) when
#: missing. Every script that settles a fence uses it (the page read's too: versions.py).
SETTLED_FENCE_LUA = (
    NOW_US_FUNCTION
    + """
local function settled_fence(key, ttl)
  local f = redis.call('GET', key)
  if f then return f end
  f = now_us()
  redis.call('SET', key, f, 'PX', ttl)
  return f
end
"""
)

# KEYS: fence. ARGV: ttl ms. The fence, created at "now" when missing.
SETTLE_FENCE = Script("settle_fence", SETTLED_FENCE_LUA + "return settled_fence(KEYS[1], ARGV[1])")

# KEYS: value, lock, fence. ARGV: token, lease ms, fence ttl ms. Take the lock; when taken,
# answer the value and the fence (settled as SETTLE_FENCE does).
ACQUIRE_READ = Script(
    "acquire_read",
    SETTLED_FENCE_LUA
    + """
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local f = settled_fence(KEYS[3], ARGV[3])
return {redis.call('GET', KEYS[1]), f}
""",
)

# KEYS: value, lock, fence. ARGV: fence ttl ms. Delete value and lock, advance the fence to
# max(fence + 1, now), wake waiters.
INVALIDATE = Script(
    "invalidate",
    NOW_US
    + """
redis.call('DEL', KEYS[1], KEYS[2])
local f = redis.call('GET', KEYS[3])
if f and tonumber(f) >= tonumber(now) then redis.call('INCR', KEYS[3])
else redis.call('SET', KEYS[3], now) end
redis.call('PEXPIRE', KEYS[3], ARGV[1])
redis.call('PUBLISH', KEYS[2], 'invalidated')
return 1
""",
)

#: Near cache reads (:mod:`cachewise.backends.near`): values and their remaining TTL in ms
#: (-1: none, -2: absent, -3: not a string: never held).
READ_WITH_TTL = Script(
    "read_with_ttl",
    """
local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.pcall('GET', key)
  if type(value) == 'table' and value.err then
    out[#out + 1] = false
    out[#out + 1] = -3
  else
    out[#out + 1] = value
    out[#out + 1] = redis.call('PTTL', key)
  end
end
return out
""",
)
