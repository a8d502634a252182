"""Redis state: several gateway processes share limits, suspensions, nonces
and cache invalidation through one Redis (redis.asyncio on the request path).

Each check-and-count is one Lua script, so a call costs one round trip and
is applied all or nothing even with many processes racing. Any Redis error
becomes UNAVAILABLE STATE_UNAVAILABLE: the gateway fails closed, and the
connection pool reconnects by itself on a later call once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from gateway.state.base import (
    ADMITTED,
    INVALIDATION_CHANNEL,
    Observation,
    Slot,
    StateBackend,
    Verdict,
    Window,
    state_unavailable,
)

log = logging.getLogger("govgw.state")
T = TypeVar("T")
PREFIX = "govgw:"
SUSPENDED_KEY = PREFIX + "suspended"
GRANTS_VERSION_KEY = PREFIX + "grants_version"
# Short timeouts: a call waiting on a dead Redis should fail in well under a second.
CONNECT_TIMEOUT_S = 0.5
SOCKET_TIMEOUT_S = 1.0

# KEYS: suspended hash, slot key, window keys...
# ARGV: caller, now, token, slot limit (0 = none), slot ttl, then limit, window, member per window.
_ADMIT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {-3, '0'} end
local now = tonumber(ARGV[2])
local n = #KEYS - 2
for i = 1, n do
  local k = KEYS[i + 2]
  local b = 5 + (i - 1) * 3
  local limit, win, member = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), ARGV[b + 3]
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - win)
  if member == '' or not redis.call('ZSCORE', k, member) then
    local size = redis.call('ZCARD', k)
    if size >= limit then
      local retry = win
      if size > 0 then
        local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
        retry = tonumber(oldest[2]) + win - now
      end
      return {i - 1, tostring(retry)}
    end
  end
end
local slot_limit = tonumber(ARGV[4])
if slot_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= slot_limit then return {-2, '0.05'} end
  local ttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 1000))
end
for i = 1, n do
  local k = KEYS[i + 2]
  local b = 5 + (i - 1) * 3
  local win, member = tonumber(ARGV[b + 2]), ARGV[b + 3]
  if member == '' then member = ARGV[3] end
  redis.call('ZADD', k, now, member)
  redis.call('PEXPIRE', k, math.ceil(win * 1000))
end
return {-1, '0'}
"""

# KEYS: answered, no_match, subjects, slot to release (or a dummy).
# ARGV: now, window, token, since, release flag, then per answer: subject, miss flag.
# Answers are members token#i, so the answers of one batch count one by one.
_OBSERVE = """
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
_RESERVE = """
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
_ADMIT_MANY = """
local now = tonumber(ARGV[2])
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
local slot_limit = tonumber(ARGV[4])
if slot_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= slot_limit then return all_items(-2, '0.05') end
  local ttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 1000))
end
local a, k, item = 6, 3, 0
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local blocked, retry = -1, '0'
  for i = 0, n - 1 do
    local key, b = KEYS[k + i], a + 1 + 3 * i
    local limit, win, member = tonumber(ARGV[b]), tonumber(ARGV[b + 1]), ARGV[b + 2]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - win)
    if member == '' or not redis.call('ZSCORE', key, member) then
      local size = redis.call('ZCARD', key)
      if size >= limit then
        local r = win
        if size > 0 then
          local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
          r = tonumber(oldest[2]) + win - now
        end
        blocked, retry = i, tostring(r)
        break
      end
    end
  end
  if blocked == -1 then
    for i = 0, n - 1 do
      local key, b = KEYS[k + i], a + 1 + 3 * i
      local win, member = tonumber(ARGV[b + 1]), ARGV[b + 2]
      if member == '' then member = ARGV[3] .. '#' .. item end
      redis.call('ZADD', key, now, member)
      redis.call('PEXPIRE', key, math.ceil(win * 1000))
    end
  end
  item = item + 1
  out[2 * item - 1] = blocked
  out[2 * item] = retry
  a, k = a + 1 + 3 * n, k + n
end
return out
"""

# KEYS: the caller's distinct subjects. ARGV: now, window, since, limit, then per
# item: its number of subjects n, then the subjects. Returns the items counted.
_RESERVE_MANY = """
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
_OBSERVE_MANY = """
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


class RedisState(StateBackend):
    shared = True

    def __init__(self, url: str) -> None:
        self.url = url
        self._r: Any = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            health_check_interval=5,
        )
        self._admit = self._r.register_script(_ADMIT)
        self._observe = self._r.register_script(_OBSERVE)
        self._reserve = self._r.register_script(_RESERVE)
        self._admit_many = self._r.register_script(_ADMIT_MANY)
        self._reserve_many = self._r.register_script(_RESERVE_MANY)
        self._observe_many = self._r.register_script(_OBSERVE_MANY)
        self._watch_tasks: list[asyncio.Task[None]] = []

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await op()
        except (RedisError, OSError) as e:
            # The error text may name the host; keep only the kind.
            log.warning("state backend unreachable: %s", type(e).__name__)
            raise state_unavailable() from None

    async def admit(
        self, caller_id: str, windows: Sequence[Window], slot: Slot | None, token: str, now: float
    ) -> Verdict:
        keys = [SUSPENDED_KEY, PREFIX + (slot.key if slot else "noslot")]
        args: list[Any] = [caller_id, repr(now), token, slot.limit if slot else 0]
        args.append(repr(slot.ttl_s) if slot else "0")
        for w in windows:
            keys.append(PREFIX + w.key)
            args += [w.limit, repr(w.window_s), w.member]
        blocked, retry = await self._call(lambda: self._admit(keys=keys, args=args))
        blocked = int(blocked)
        return Verdict(blocked, 0.0 if blocked == ADMITTED else max(float(retry), 0.001))

    async def release(self, slot: Slot, token: str) -> None:
        await self._call(lambda: self._r.zrem(PREFIX + slot.key, token))

    async def reserve_subjects(
        self,
        caller_id: str,
        subjects: Sequence[str],
        limit: int,
        window_s: float,
        now: float,
        since: float = 0.0,
    ) -> int:
        keys = [f"{PREFIX}obs:{caller_id}:subjects"]
        args = [repr(now), repr(window_s), repr(since), limit, *[s for s in subjects if s]]
        return int(await self._call(lambda: self._reserve(keys=keys, args=args)))

    async def observe(
        self,
        caller_id: str,
        subjects: Sequence[str],
        misses: Sequence[bool],
        window_s: float,
        token: str,
        now: float,
        since: float = 0.0,
        release: Slot | None = None,
    ) -> Observation:
        keys = [f"{PREFIX}obs:{caller_id}:{p}" for p in ("answered", "no_match", "subjects")]
        keys.append(PREFIX + (release.key if release else "noslot"))
        args = [repr(now), repr(window_s), token, repr(since), "1" if release else "0"]
        for subject, miss in zip(subjects, misses, strict=True):
            args += [subject, "1" if miss else "0"]
        answered, misses, subjects = await self._call(lambda: self._observe(keys=keys, args=args))
        return Observation(int(answered), int(misses), int(subjects))

    async def admit_many(
        self,
        caller_id: str,
        windows: Sequence[Sequence[Window]],
        slot: Slot | None,
        token: str,
        now: float,
    ) -> list[Verdict]:
        keys = [SUSPENDED_KEY, PREFIX + (slot.key if slot else "noslot")]
        args: list[Any] = [caller_id, repr(now), token, slot.limit if slot else 0]
        args.append(repr(slot.ttl_s) if slot else "0")
        for item in windows:
            args.append(len(item))
            for w in item:
                keys.append(PREFIX + w.key)
                args += [w.limit, repr(w.window_s), w.member]
        flat = await self._call(lambda: self._admit_many(keys=keys, args=args))
        return [
            Verdict(int(b), 0.0 if int(b) == ADMITTED else max(float(r), 0.001))
            for b, r in zip(flat[::2], flat[1::2], strict=True)
        ]

    async def reserve_many(
        self,
        caller_id: str,
        subjects: Sequence[Sequence[str]],
        limit: int,
        window_s: float,
        now: float,
        since: float = 0.0,
    ) -> int:
        keys = [f"{PREFIX}obs:{caller_id}:subjects"]
        args: list[Any] = [repr(now), repr(window_s), repr(since), limit]
        for item in subjects:
            args += [len(item), *item]
        return int(await self._call(lambda: self._reserve_many(keys=keys, args=args)))

    async def observe_many(
        self,
        caller_id: str,
        subjects: Sequence[Sequence[str]],
        misses: Sequence[Sequence[bool]],
        window_s: float,
        token: str,
        now: float,
        since: float = 0.0,
        release: Slot | None = None,
        stop: tuple[int, float] = (0, 1.0),
    ) -> tuple[int, Observation]:
        keys = [f"{PREFIX}obs:{caller_id}:{p}" for p in ("answered", "no_match", "subjects")]
        keys.append(PREFIX + (release.key if release else "noslot"))
        args: list[Any] = [repr(now), repr(window_s), token, repr(since)]
        args += ["1" if release else "0", stop[0], repr(float(stop[1]))]
        for item_subjects, item_misses in zip(subjects, misses, strict=True):
            args.append(len(item_misses))
            for subject, miss in zip(item_subjects, item_misses, strict=True):
                args += [subject, "1" if miss else "0"]
        counted, answered, missed, spread = await self._call(
            lambda: self._observe_many(keys=keys, args=args)
        )
        return int(counted), Observation(int(answered), int(missed), int(spread))

    async def suspend(self, caller_id: str, reason: str) -> bool:
        return bool(await self._call(lambda: self._r.hset(SUSPENDED_KEY, caller_id, reason)))

    async def reinstate(self, caller_id: str) -> bool:
        return bool(await self._call(lambda: self._r.hdel(SUSPENDED_KEY, caller_id)))

    async def suspended(self) -> dict[str, str]:
        return dict(await self._call(lambda: self._r.hgetall(SUSPENDED_KEY)))

    async def claim(self, key: str, ttl_s: float) -> bool:
        ms = max(int(ttl_s * 1000), 1)
        return bool(
            await self._call(lambda: self._r.set(PREFIX + "claim:" + key, "1", nx=True, px=ms))
        )

    async def put_if_absent(self, key: str, value: str, ttl_s: float) -> str | None:
        ms = max(int(ttl_s * 1000), 1)
        # SET NX GET (Redis >= 7.0): store-or-read in one atomic round trip.
        held = await self._call(
            lambda: self._r.set(PREFIX + "val:" + key, value, nx=True, get=True, px=ms)
        )
        return None if held is None else str(held)

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        ms = max(int(ttl_s * 1000), 1)
        await self._call(lambda: self._r.set(PREFIX + "val:" + key, value, px=ms))

    async def forget(self, key: str) -> None:
        await self._call(lambda: self._r.delete(PREFIX + "val:" + key))

    async def grants_version(self) -> int:
        v = await self._call(lambda: self._r.get(GRANTS_VERSION_KEY))
        return int(v or 0)

    async def bump_grants_version(self) -> int:
        v = int(await self._call(lambda: self._r.incr(GRANTS_VERSION_KEY)))
        await self.publish_invalidation(f"grants:{v}")
        return v

    async def publish_invalidation(self, message: str) -> None:
        await self._call(lambda: self._r.publish(INVALIDATION_CHANNEL, message))

    async def watch(self, on_invalidate: Callable[[str], None]) -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(self._listen(on_invalidate, ready))
        self._watch_tasks.append(task)
        # Return once subscribed (or after a short wait if Redis is down; the
        # listener keeps retrying in the background).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=2.0)

    async def _listen(self, on_invalidate: Callable[[str], None], ready: asyncio.Event) -> None:
        while True:
            pubsub = self._r.pubsub()
            try:
                await pubsub.subscribe(INVALIDATION_CHANNEL)
                ready.set()
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None:
                        _deliver(on_invalidate, str(msg["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                # Invalidations published while we were away are lost: drop
                # every cached plan on reconnect rather than serve a stale one.
                _deliver(on_invalidate, "reconnect")
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def ping(self) -> None:
        await self._call(lambda: self._r.ping())

    async def aclose(self) -> None:
        for t in self._watch_tasks:
            t.cancel()
        for t in self._watch_tasks:
            with contextlib.suppress(BaseException):
                await t
        self._watch_tasks.clear()
        with contextlib.suppress(Exception):
            await self._r.aclose()


def _deliver(on_invalidate: Callable[[str], None], message: str) -> None:
    # A failing callback must not end the subscription for the process's life.
    try:
        on_invalidate(message)
    except Exception as e:
        log.error("invalidation callback failed: %s", type(e).__name__)
