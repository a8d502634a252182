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

from gateway.state import redis_scripts as scripts
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
        self._admit = self._r.register_script(scripts.ADMIT)
        self._observe = self._r.register_script(scripts.OBSERVE)
        self._reserve = self._r.register_script(scripts.RESERVE)
        self._admit_many = self._r.register_script(scripts.ADMIT_MANY)
        self._reserve_many = self._r.register_script(scripts.RESERVE_MANY)
        self._observe_many = self._r.register_script(scripts.OBSERVE_MANY)
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
        keys, args = _admit_head(caller_id, slot, token, now)
        for w in windows:
            keys.append(PREFIX + w.key)
            args += [w.limit, repr(w.window_s), w.member]
        return _verdict(*await self._call(lambda: self._admit(keys=keys, args=args)))

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
        keys = _observe_keys(caller_id, release)
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
        keys, args = _admit_head(caller_id, slot, token, now)
        for item in windows:
            args.append(len(item))
            for w in item:
                keys.append(PREFIX + w.key)
                args += [w.limit, repr(w.window_s), w.member]
        flat = await self._call(lambda: self._admit_many(keys=keys, args=args))
        return [_verdict(b, r) for b, r in zip(flat[::2], flat[1::2], strict=True)]

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
        keys = _observe_keys(caller_id, release)
        args: list[Any] = [repr(now), repr(window_s), token, repr(since), "1" if release else "0"]
        args += [stop[0], repr(float(stop[1]))]
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


def _admit_head(
    caller_id: str, slot: Slot | None, token: str, now: float
) -> tuple[list[Any], list[Any]]:
    """The KEYS and ARGV an admit script starts with (scripts.ADMIT, ADMIT_MANY)."""
    keys: list[Any] = [SUSPENDED_KEY, PREFIX + (slot.key if slot else "noslot")]
    args: list[Any] = [caller_id, repr(now), token, slot.limit if slot else 0]
    args.append(repr(slot.ttl_s) if slot else "0")
    return keys, args


def _verdict(blocked: Any, retry: Any) -> Verdict:
    b = int(blocked)
    return Verdict(b, 0.0 if b == ADMITTED else max(float(retry), 0.001))


def _observe_keys(caller_id: str, release: Slot | None) -> list[str]:
    """An observe script's KEYS: the caller's answers, misses, subjects, and the slot."""
    keys = [f"{PREFIX}obs:{caller_id}:{p}" for p in ("answered", "no_match", "subjects")]
    keys.append(PREFIX + (release.key if release else "noslot"))
    return keys


def _deliver(on_invalidate: Callable[[str], None], message: str) -> None:
    # A failing callback must not end the subscription for the process's life.
    try:
        on_invalidate(message)
    except Exception as e:
        log.error("invalidation callback failed: %s", type(e).__name__)
