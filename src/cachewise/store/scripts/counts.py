"""Scripts of counts: :class:`cachewise.Counter`, metrics batches, page-fill budgets, ``incr``.

Counters (see :mod:`cachewise.counters.batches`):
>
Layout, every key under the counter's hash tag ``{name}`` (one Cluster slot):

* ``~live:<run>``: a hash ``id -> pending count``; one field per id (about 60-70 bytes of Redis
  memory per id, against ~200 for a key per id with an index set). ``<run>`` is the first 12
  characters of the server's ``run_id``, read by the script itself (``INFO server``): a server
  restarted from an older snapshot, or a promoted replica, has another run id, so increments
  made after the restart never mix with counts the snapshot brought back (which may already
  be in the database: the flusher reconciles those against its batch records).
* ``~lives``: the set of ``<run>`` values that have a live hash.
* ``~seq``: a hash ``<run> -> number of the last batch drained from ~live:<run>``. It goes back in
  time with a snapshot, which is how a flusher tells that the database holds batches drained
  after the snapshot was taken.
* ``~pending``: a sorted set ``batch id -> lease deadline (server ms)``; ``~batch:<id>`` a hash of
  the batch's counts plus ``~src`` (its run) and ``~seq`` (its number). Ids never start with ``~``
  (``encode_part`` quotes such strings), so the two cannot collide with an id.

No key is given a TTL unless the counter has one: under a ``volatile-*`` eviction policy, keys
without a TTL are never evicted.
"""

from __future__ import annotations

from . import Script
from .clock import NOW_MS

__all__ = [
    "BUDGET_ADMIT",
    "COUNTER_BATCH_CLAIM",
    "COUNTER_BATCH_DONE",
    "COUNTER_BATCH_RESTORE",
    "COUNTER_DISCARD",
    "COUNTER_DRAIN_BATCH",
    "COUNTER_GET_MANY",
    "COUNTER_INCR",
    "COUNTER_INCR_MANY",
    "COUNTER_RUN",
    "INCR_ANYWAY",
    "INCR_IF_EXISTS",
    "METRICS_APPLY_BATCH",
]

# The first 12 characters of the server's run id: changes at every restart and on a promotion.
_RUN = "local run = string.sub(string.match(redis.call('INFO', 'server'), 'run_id:(%x+)'), 1, 12) "

# Start the TTL of a live hash the counter gives one (ARGV ttl ms, '0' for none) when it has none.
_TOUCH = """
local function touch(live, ttl)
  if ttl ~= '0' and redis.call('PTTL', live) == -1 then redis.call('PEXPIRE', live, ttl) end
end
"""

# KEYS: live hash prefix, lives set. ARGV: amount, ttl ms|'0', id. Returns the pending count.
COUNTER_INCR = Script(
    "counter_incr",
    (
        _RUN
        + _TOUCH
        + """
local live = KEYS[1] .. run
local n = redis.call('HINCRBY', live, ARGV[3], ARGV[1])
if n == tonumber(ARGV[1]) then
  redis.call('SADD', KEYS[2], run)
  touch(live, ARGV[2])
end
return n
"""
    ),
)

# KEYS: live hash prefix, lives set. ARGV: ttl ms|'0', then (id, amount) pairs. Returns the counts.
COUNTER_INCR_MANY = Script(
    "counter_incr_many",
    (
        _RUN
        + _TOUCH
        + """
local live = KEYS[1] .. run
local out = {}
for i = 2, #ARGV, 2 do
  out[#out + 1] = redis.call('HINCRBY', live, ARGV[i], ARGV[i + 1])
end
if #out > 0 then
  redis.call('SADD', KEYS[2], run)
  touch(live, ARGV[1])
end
return out
"""
    ),
)

# Pending counts of ids, summed over every live hash. KEYS: live prefix, lives set. ARGV: ids.
COUNTER_GET_MANY = Script(
    "counter_get_many",
    """
local out = {}
for i = 1, #ARGV do out[i] = 0 end
for _, run in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local values = redis.call('HMGET', KEYS[1] .. run, unpack(ARGV))
  for i = 1, #ARGV do out[i] = out[i] + (tonumber(values[i]) or 0) end
end
return out
""",
)

# Move up to ARGV[4] ids of ~live:<ARGV[3]> into a new pending batch, atomically: an increment
# lands either before (in this batch) or after (a fresh field: the next batch). O(ARGV[4]).
# KEYS: live prefix, lives, seq, pending, batch. ARGV: batch id, lease ms, run, max ids, ttl,
# '1' when the caller takes ARGV[3] for the current run (the call fails if it is not any more).
# Returns {deadline, seq, {id, count, ...}}; {0} when that live hash is empty; {-1} when stale.
COUNTER_DRAIN_BATCH = Script(
    "counter_drain_batch",
    (
        NOW_MS
        + _TOUCH
        + """
if ARGV[6] == '1' then
"""
        + _RUN
        + """
  if run ~= ARGV[3] then return {-1} end
end
local live = KEYS[1] .. ARGV[3]
local taken = redis.call('HRANDFIELD', live, tonumber(ARGV[4]), 'WITHVALUES')
if #taken == 0 then
  redis.call('SREM', KEYS[2], ARGV[3])
  return {0}
end
local ids = {}
for i = 1, #taken, 2 do ids[#ids + 1] = taken[i] end
redis.call('HDEL', live, unpack(ids))
local seq = redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('HSET', KEYS[5], '~src', ARGV[3], '~seq', seq, unpack(taken))
local deadline = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[4], deadline, ARGV[1])
if redis.call('EXISTS', live) == 1 then touch(live, ARGV[5]) end
return {deadline, seq, taken}
"""
    ),
)

# The current run. KEYS: live prefix (only to route the call to the counter's node on Cluster).
COUNTER_RUN = Script(
    "counter_run",
    _RUN + "return run",
)

# After a rollback: drop from ~live:<ARGV[1]> the ids the database shows were drained after the
# snapshot, and move ~seq past the database's last batch. KEYS: live prefix, seq. ARGV: run,
# last seq in the database, ids. Returns the sum of the counts dropped.
COUNTER_DISCARD = Script(
    "counter_discard",
    """
local live = KEYS[1] .. ARGV[1]
local dropped = 0
for i = 3, #ARGV do
  local v = redis.call('HGET', live, ARGV[i])
  if v then
    dropped = dropped + tonumber(v)
    redis.call('HDEL', live, ARGV[i])
  end
end
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return dropped
""",
)

# Take over the lease of up to ARGV[2] pending batches whose lease expired. KEYS: pending.
# ARGV: lease ms, max batches. Returns {deadline, {batch ids}}. The deadline doubles as the
# lease's token: a claim always sets a later one, so a flusher whose lease was taken can tell.
COUNTER_BATCH_CLAIM = Script(
    "counter_batch_claim",
    (
        NOW_MS
        + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local deadline = now + tonumber(ARGV[1])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], deadline, id) end
return {deadline, ids}
"""
    ),
)

# Forget a batch whose counts are committed to the database. KEYS: pending, batch. ARGV: id.
COUNTER_BATCH_DONE = Script(
    "counter_batch_done",
    """
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
""",
)

# Put a batch whose application failed (rolled back for sure) into the current run's live
# counts, if the caller still holds its lease. KEYS: live prefix, lives, pending, batch.
# ARGV: batch id, deadline, ttl ms|'0', then the ids to put back (all when none are named).
# Returns 1 when restored, 0 when the lease was lost.
COUNTER_BATCH_RESTORE = Script(
    "counter_batch_restore",
    (
        _TOUCH
        + """
local held = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not held or tonumber(held) ~= tonumber(ARGV[2]) then return 0 end
"""
        + _RUN
        + """
local live = KEYS[1] .. run
local all = {}
if #ARGV > 3 then
  for i = 4, #ARGV do
    all[#all + 1] = ARGV[i]
    all[#all + 1] = redis.call('HGET', KEYS[4], ARGV[i]) or '0'
  end
else
  all = redis.call('HGETALL', KEYS[4])
end
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 1) ~= '~' then redis.call('HINCRBY', live, all[i], all[i + 1]) end
end
if redis.call('EXISTS', live) == 1 then
  redis.call('SADD', KEYS[2], run)
  touch(live, ARGV[3])
end
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""
    ),
)


#: INCRBY only if the key exists, in one round trip and atomically (Django raises on a missing key).
INCR_IF_EXISTS = Script(
    "incr_if_exists",
    """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
""",
)

#: INCRBY creating the key at the delta when missing (django-redis' ``ignore_key_check=True``).
INCR_ANYWAY = Script("incr_anyway", "return redis.call('INCRBY', KEYS[1], ARGV[1])")

# Page-fill budget. KEYS[1]: the window counter. ARGV: count, window in ms. The first INCRBY
# opens the window.
BUDGET_ADMIT = Script(
    "budget_admit",
    """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if used == tonumber(ARGV[1]) or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return used
""",
)

#: Metrics totals across processes (:mod:`cachewise.monitoring.aggregate`), exactly once.
#: KEYS: totals, minute bucket, this process's batch number, the alias' namespace set.
#: ARGV: batch number, bucket TTL, number TTL, number of totals fields, namespace cap, then
#: (field, delta) pairs for the totals and for the bucket. A namespace not yet in the set joins
#: it while the set is under the cap; past the cap its deltas land on ``<event>|other``: the cap
#: holds for the whole fleet, not per process, in the same atomic step as the counts.
METRICS_APPLY_BATCH = Script(
    "metrics_apply_batch",
    """
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
local seq = tonumber(ARGV[1])
if seq <= last then return 0 end
local cap = tonumber(ARGV[5])
local i = 6
for _ = 1, tonumber(ARGV[4]) do
  local field = ARGV[i]
  local bar = string.find(field, '|', 1, true)
  local namespace = string.sub(field, bar + 1)
  if namespace ~= 'other' and namespace ~= '-' and redis.call('SISMEMBER', KEYS[4], namespace) == 0 then
    if redis.call('SCARD', KEYS[4]) < cap then
      redis.call('SADD', KEYS[4], namespace)
    else
      field = string.sub(field, 1, bar) .. 'other'
    end
  end
  redis.call('HINCRBYFLOAT', KEYS[1], field, ARGV[i + 1])
  i = i + 2
end
if i <= #ARGV then
  while i <= #ARGV do
    redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
redis.call('SET', KEYS[3], seq, 'EX', ARGV[3])
return 1
""",
)
