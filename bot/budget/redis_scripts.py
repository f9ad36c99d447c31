"""The Lua that makes every Redis budget operation atomic, one script per method.

Time always comes from ``redis.call('TIME')``: replicas' clocks may disagree, the server's is
the one they share. The logic mirrors :mod:`bot.budget.memory` line by line; change both.

Floats travel as ``%.17g`` strings (Lua numbers returned to Redis become truncated integers,
and ``tostring`` keeps only 14 digits); integers travel as integers or as the caller's strings.
"""

from __future__ import annotations

_PRELUDE = r"""
local EPSILON = 1e-9  -- float refills land a hair under whole numbers: forgive that much

local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end

local function num(x)
  return string.format('%.17g', x)
end

local function int(x)
  return string.format('%d', x)
end

-- The window of a cap at `now` out of the three the caller computed around its own clock
-- (ARGV[a], ARGV[a + 1]: name and end in Unix seconds, then the next two): the first one not
-- over by the server's clock. The caller knows the zone's rules; Lua does not need them.
local function pick_window(a, now)
  for k = 0, 2 do
    local ends = tonumber(ARGV[a + 2 * k + 1])
    if now < ends or k == 2 then
      return ARGV[a + 2 * k], ends
    end
  end
end

-- A little longer than the window, so a refund just after it ends still finds its counter.
local function cap_ttl(period)
  if period == 'day' then return int(2 * 86400) end
  if period == 'week' then return int(8 * 86400) end
  return int(32 * 86400)
end

-- A bucket refilled to `now`; `cache` makes repeated keys in one call share one state.
local function load_bucket(cache, key, limit, period, now)
  local b = cache[key]
  if not b then
    local h = redis.call('HMGET', key, 'level', 'at', 'learned', 'blocked_until')
    if h[1] then
      b = {level = tonumber(h[1]), at = tonumber(h[2]),
           learned = h[3] and tonumber(h[3]) or nil, blocked = h[4] and tonumber(h[4]) or 0}
    else
      b = {level = limit, at = now, learned = nil, blocked = 0}
    end
    cache[key] = b
  end
  b.period = period
  local lim = limit
  if b.learned and b.learned ~= 0 then lim = b.learned end
  if now > b.at then
    b.level = math.min(lim, b.level + (now - b.at) * lim / period)
    b.at = now
  end
  return b, lim
end

local function save_bucket(key, b, now)
  if b.learned then
    redis.call('HSET', key, 'level', num(b.level), 'at', num(b.at),
      'blocked_until', num(b.blocked), 'learned', int(b.learned))
  else
    redis.call('HSET', key, 'level', num(b.level), 'at', num(b.at),
      'blocked_until', num(b.blocked))
  end
  -- Unused buckets disappear once they would be full again anyway (and no block is pending);
  -- a block of more than a month (or math.huge) is a mistake not worth keeping forever.
  local ttl = math.min(math.max(2 * b.period + 60, b.blocked - now + 60), 32 * 86400)
  redis.call('PEXPIRE', key, int(math.ceil(ttl * 1000)))
end
"""

ACQUIRE = (
    _PRELUDE
    + r"""
-- KEYS: n bucket hashes, then one key stem per cap (completed here with the window).
-- ARGV: n, then (limit, period, amount) per rate, then per cap (limit, period, amount, and
-- three windows as name, end).
local CAP_ARGS = 9
local now = server_now()
local n = tonumber(ARGV[1])
local m = #KEYS - n

local windows = {}
for j = 1, m do
  local a = 1 + 3 * n + CAP_ARGS * (j - 1)
  local limit, amount = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 3])
  local w, ends = pick_window(a + 4, now)
  local used = tonumber(redis.call('GET', KEYS[n + j] .. w) or '0')
  if used + amount > limit then
    return {'refused', j, used, ends}
  end
  windows[j] = w
end

local cache = {}
local longest, longest_i = 0, nil
for i = 1, n do
  local a = 1 + 3 * (i - 1)
  local limit, period, amount = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local b, lim = load_bucket(cache, KEYS[i], limit, period, now)
  local seconds
  if amount > lim then
    seconds = math.huge
  else
    seconds = math.max(b.blocked - now, (amount - b.level - EPSILON) * period / lim)
  end
  if seconds > 0 and (longest_i == nil or seconds > longest) then
    longest, longest_i = seconds, i
  end
end
if longest_i then
  return {'wait', longest_i, num(longest)}
end

for i = 1, n do
  local b = cache[KEYS[i]]
  b.level = b.level - tonumber(ARGV[1 + 3 * (i - 1) + 3])
end
for key, b in pairs(cache) do
  save_bucket(key, b, now)
end
for j = 1, m do
  local a = 1 + 3 * n + CAP_ARGS * (j - 1)
  local key = KEYS[n + j] .. windows[j]
  redis.call('INCRBY', key, ARGV[a + 3])
  redis.call('EXPIRE', key, cap_ttl(ARGV[a + 2]))
end
return {'granted', unpack(windows)}
"""
)

ADJUST = (
    _PRELUDE
    + r"""
-- KEYS: n bucket hashes, then the full cap counter keys (window included).
-- ARGV: n, then (limit, period, amount) per rate, then (amount, period) per cap.
local now = server_now()
local n = tonumber(ARGV[1])
local cache = {}
for i = 1, n do
  local a = 1 + 3 * (i - 1)
  local limit, period, amount = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local b, lim = load_bucket(cache, KEYS[i], limit, period, now)
  b.level = math.min(lim, b.level - amount)
  save_bucket(KEYS[i], b, now)
end
for j = 1, #KEYS - n do
  local a = 1 + 3 * n + 2 * (j - 1)
  local key = KEYS[n + j]
  local used = tonumber(redis.call('GET', key) or '0')
  if used + tonumber(ARGV[a + 1]) < 0 then
    redis.call('SET', key, '0')
  else
    redis.call('INCRBY', key, ARGV[a + 1])
  end
  redis.call('EXPIRE', key, cap_ttl(ARGV[a + 2]))
end
return 1
"""
)

LEARN = (
    _PRELUDE
    + r"""
-- KEYS: the bucket. ARGV: configured limit, period, learned limit, remaining.
local now = server_now()
local new_limit, remaining = tonumber(ARGV[3]), tonumber(ARGV[4])
local b, old = load_bucket({}, KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
b.learned = new_limit
if new_limit > old then
  b.level = b.level + new_limit - old  -- the room we did not know about
end
b.level = math.min(b.level, remaining, new_limit)
save_bucket(KEYS[1], b, now)
return 1
"""
)

BLOCK = (
    _PRELUDE
    + r"""
-- KEYS: the buckets. ARGV: seconds, then (limit, period) per bucket.
local now = server_now()
local seconds = tonumber(ARGV[1])
local cache = {}
for i = 1, #KEYS do
  local b = load_bucket(cache, KEYS[i], tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]), now)
  b.blocked = math.max(b.blocked, now + seconds)
  save_bucket(KEYS[i], b, now)
end
return 1
"""
)

RATE_STATE = (
    _PRELUDE
    + r"""
-- KEYS: the bucket. ARGV: limit, period. Reads only: a refill computed is a refill stored.
local now = server_now()
local b, lim = load_bucket({}, KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
return {lim, num(b.level), num(math.max(0, b.blocked - now))}
"""
)

CAP_STATE = (
    _PRELUDE
    + r"""
-- KEYS: the cap's key stem. ARGV: three windows as name, end.
local w, ends = pick_window(1, server_now())
return {tonumber(redis.call('GET', KEYS[1] .. w) or '0'), ends}
"""
)

HEARTBEAT = (
    _PRELUDE
    + r"""
-- KEYS: the replicas sorted set. ARGV: own id, seconds a member counts as live.
local now = server_now()
local live = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], num(now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. num(now - live))
redis.call('EXPIRE', KEYS[1], int(2 * live))
return redis.call('ZCARD', KEYS[1])
"""
)
