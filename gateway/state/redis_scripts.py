"""The Lua scripts of the Redis state (`gateway.state.redisstate`): each check-and-count
is one script, so it costs one round trip and is applied all or nothing however many
gateway processes race. The in-process state (`gateway.state.memory`) does the same in
Python; a property test holds the two equal (tests/gateway/state)."""

# Lua shared by ADMIT and ADMIT_MANY. KEYS[2] is the slot; ARGV[3] the token,
# ARGV[4] the slot limit (0 = none), ARGV[5] its ttl.
_ADMIT_STEPS = """
local now = tonumber(ARGV[2])
-- The retry (seconds) when window `key` is full for `member`, else nil; trims it.
local function full(key, limit, win, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - win)
  if member ~= '' and redis.call('ZSCORE', key, member) then return nil end
  local size = redis.call('ZCARD', key)
  if size < limit then return nil end
  if size == 0 then return win end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + win - now
end
-- Take the in-flight slot under the token; false when it is full.
local function take_slot()
  local slot_limit = tonumber(ARGV[4])
  if slot_limit <= 0 then return true end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= slot_limit then return false end
  local ttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 1000))
  return true
end
local function count(key, win, member)
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(win * 1000))
end
"""

# KEYS: suspended hash, slot key, window keys...
# ARGV: caller, now, token, slot limit (0 = none), slot ttl, then limit, window, member per window.
ADMIT = (
    _ADMIT_STEPS
    + """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {-3, '0'} end
local n = #KEYS - 2
for i = 1, n do
  local b = 5 + (i - 1) * 3
  local retry = full(KEYS[i + 2], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), ARGV[b + 3])
  if retry then return {i - 1, tostring(retry)} end
end
if not take_slot() then return {-2, '0.05'} end
for i = 1, n do
  local b = 5 + (i - 1) * 3
  local member = ARGV[b + 3]
  if member == '' then member = ARGV[3] end
  count(KEYS[i + 2], tonumber(ARGV[b + 2]), member)
end
return {-1, '0'}
"""
)

# KEYS: answered, no_match, subjects, slot to release (or a dummy).
# ARGV: now, window, token, since, release flag, then per answer: subject, miss flag.
# Answers are members token#i, so the answers of one batch count one by one.
OBSERVE = """
local now, win = tonumber(ARGV[1]), tonumber(ARGV[2])
local horizon = math.max(now - win, tonumber(ARGV[4]))
if ARGV[5] == '1' then redis.call('ZREM', KEYS[4], ARGV[3]) end
for i = 6, #ARGV, 2 do
  local member = ARGV[3] .. '#' .. (i - 4) / 2
  redis.call('ZADD', KEYS[1], now, member)
  if ARGV[i + 1] == '1' then redis.call('ZADD', KEYS[2], now, member) end
  if ARGV[i] ~= '' then redis.call('ZADD', KEYS[3], now, ARGV[i]) end
end
local out = {}
for i = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', horizon)
  redis.call('PEXPIRE', KEYS[i], math.ceil(win * 1000))
  out[i] = redis.call('ZCARD', KEYS[i])
end
return out
"""


# KEYS: the caller's distinct subjects. ARGV: now, window, since, limit, then subjects.
# Atomic: either every subject is counted, or (past the limit) none is.
RESERVE = """
local now, win = tonumber(ARGV[1]), tonumber(ARGV[2])
local horizon = math.max(now - win, tonumber(ARGV[3]))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
local have = redis.call('ZCARD', KEYS[1])
local seen = {}
local new = 0
for i = 5, #ARGV do
  local s = ARGV[i]
  if not seen[s] and not redis.call('ZSCORE', KEYS[1], s) then new = new + 1 end
  seen[s] = true
end
if have + new > tonumber(ARGV[4]) then return -1 end
for i = 5, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], math.ceil(win * 1000))
return have + new
"""


# The batch forms (StateBackend.admit_many, reserve_many, observe_many): the single
# scripts' steps item after item, in one script, so a chunk of a batch costs one
# round trip, not one per item. An item's members are token#i (each item counts).

# KEYS: suspended hash, slot key, then every item's window keys in order.
# ARGV: caller, now, token, slot limit (0 = none), slot ttl, then per item: its
# number of windows n, then limit, window, member per window.
# Returns per item: blocked (-1 admitted, a window index, -2 slot full, -3 suspended), retry.
ADMIT_MANY = (
    _ADMIT_STEPS
    + """
local out = {}
local function all_items(code, retry)
  local a, items = 6, 0
  while a <= #ARGV do
    items = items + 1
    a = a + 1 + 3 * tonumber(ARGV[a])
  end
  for i = 1, items do out[2 * i - 1] = code; out[2 * i] = retry end
  return out
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return all_items(-3, '0') end
if not take_slot() then return all_items(-2, '0.05') end
local a, k, item = 6, 3, 0
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local blocked, retry = -1, '0'
  for i = 0, n - 1 do
    local b = a + 1 + 3 * i
    local r = full(KEYS[k + i], tonumber(ARGV[b]), tonumber(ARGV[b + 1]), ARGV[b + 2])
    if r then
      blocked, retry = i, tostring(r)
      break
    end
  end
  if blocked == -1 then
    for i = 0, n - 1 do
      local b = a + 1 + 3 * i
      local member = ARGV[b + 2]
      if member == '' then member = ARGV[3] .. '#' .. item end
      count(KEYS[k + i], tonumber(ARGV[b + 1]), member)
    end
  end
  item = item + 1
  out[2 * item - 1] = blocked
  out[2 * item] = retry
  a, k = a + 1 + 3 * n, k + n
end
return out
"""
)

# KEYS: the caller's distinct subjects. ARGV: now, window, since, limit, then per
# item: its number of subjects n, then the subjects. Returns the items counted.
RESERVE_MANY = """
local now, win = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', math.max(now - win, tonumber(ARGV[3])))
local have, limit = redis.call('ZCARD', KEYS[1]), tonumber(ARGV[4])
local a, item = 5, 0
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local seen, new = {}, 0
  for i = a + 1, a + n do
    local s = ARGV[i]
    if s ~= '' and not seen[s] and not redis.call('ZSCORE', KEYS[1], s) then new = new + 1 end
    seen[s] = true
  end
  if have + new > limit then break end
  for i = a + 1, a + n do
    if ARGV[i] ~= '' then redis.call('ZADD', KEYS[1], now, ARGV[i]) end
  end
  have, item, a = have + new, item + 1, a + 1 + n
end
redis.call('PEXPIRE', KEYS[1], math.ceil(win * 1000))
return item
"""

# KEYS: answered, no_match, subjects, slot to release (or a dummy).
# ARGV: now, window, token, since, release flag, min answers, max no-match ratio,
# then per item: its number of answers n, then subject, miss flag per answer.
# Returns: items counted, answered, no_match, subjects (after the last counted).
OBSERVE_MANY = """
local now, win = tonumber(ARGV[1]), tonumber(ARGV[2])
local horizon = math.max(now - win, tonumber(ARGV[4]))
if ARGV[5] == '1' then redis.call('ZREM', KEYS[4], ARGV[3]) end
local min_answers, max_ratio = tonumber(ARGV[6]), tonumber(ARGV[7])
for i = 1, 3 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', horizon) end
local answered = redis.call('ZCARD', KEYS[1])
local missed = redis.call('ZCARD', KEYS[2])
local a, item = 8, 0
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  for j = 0, n - 1 do
    local member = ARGV[3] .. '#' .. item .. '.' .. j
    answered = answered + redis.call('ZADD', KEYS[1], now, member)
    if ARGV[a + 2 + 2 * j] == '1' then missed = missed + redis.call('ZADD', KEYS[2], now, member) end
    if ARGV[a + 1 + 2 * j] ~= '' then redis.call('ZADD', KEYS[3], now, ARGV[a + 1 + 2 * j]) end
  end
  item, a = item + 1, a + 1 + 2 * n
  if answered >= min_answers and answered > 0 and missed / answered > max_ratio then break end
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], math.ceil(win * 1000)) end
return {item, answered, missed, redis.call('ZCARD', KEYS[3])}
"""
