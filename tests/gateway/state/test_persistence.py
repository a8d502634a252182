"""Windows survive a restart (R10): the in-process state's file in the data
directory, and Redis run with its append-only file."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from gateway.errors import GovgwError
from gateway.state import InProcessState, Window, open_state
from gateway.state.base import SUSPENDED
from gateway.state.replay import ReplayGuard
from tests.gateway.state.redis_server import RedisServer

pytestmark = pytest.mark.requirement("R10")

NONCE = "nonce-0123456789abcdef"
RATE = [Window("rate:c:verify", limit=3, window_s=60.0)]


async def _nonce_refused(guard: ReplayGuard) -> str:
    with pytest.raises(GovgwError) as info:
        await guard.check_nonce("c", NONCE, str(time.time()))
    return f"{info.value.code.name} {info.value.reason}"


def test_a_filled_window_is_still_filled_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"

    async def before() -> None:
        s = InProcessState(path)
        now = time.time()
        for i in range(3):
            assert (await s.admit("c", RATE, None, f"t{i}", now)).admitted
        assert (await s.admit("c", RATE, None, "t3", now)).blocked == 0
        await s.aclose()

    async def after() -> None:
        s = InProcessState(path)
        v = await s.admit("c", RATE, None, "t4", time.time())
        assert v.blocked == 0 and 55.0 < v.retry_after_s <= 60.0
        await s.aclose()

    asyncio.run(before())
    asyncio.run(after())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_distinct_members_and_monitor_logs_survive(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    per_subject = Window("subj:h1:callers", limit=2, window_s=3600.0)

    async def before() -> None:
        s = InProcessState(path)
        now = time.time()
        for caller in ("a", "b"):
            w = [Window(per_subject.key, 2, 3600.0, member=caller)]
            assert (await s.admit(caller, w, None, caller, now)).admitted
        for i in range(4):
            await s.observe("c", [f"h{i % 3}"], [i % 2 == 0], 3600.0, f"t{i}", now + i)
        await s.aclose()

    async def after() -> None:
        s = InProcessState(path)
        now = time.time() + 10
        w = [Window(per_subject.key, 2, 3600.0, member="c")]
        assert (await s.admit("c", w, None, "x", now)).blocked == 0  # a third caller: full
        w = [Window(per_subject.key, 2, 3600.0, member="a")]
        assert (await s.admit("a", w, None, "y", now)).admitted  # one already counted
        o = await s.observe("c", ["h9"], [False], 3600.0, "z", now)
        assert (o.answered, o.no_match, o.distinct_subjects) == (5, 2, 4)
        await s.aclose()

    asyncio.run(before())
    asyncio.run(after())


def test_a_suspension_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"

    async def before() -> None:
        s = InProcessState(path)
        await s.suspend("c", "NO_MATCH_RATIO")
        await s.suspend("d", "SUBJECT_SPREAD")
        await s.reinstate("d")
        await s.aclose()

    async def after() -> None:
        s = InProcessState(path)
        assert await s.suspended() == {"c": "NO_MATCH_RATIO"}
        assert (await s.admit("c", [], None, "t", time.time())).blocked == SUSPENDED
        await s.aclose()

    asyncio.run(before())
    asyncio.run(after())


def test_expired_entries_are_dropped_on_load(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    now = time.time()

    async def before() -> None:
        s = InProcessState(path, clock=lambda: now)
        short = [Window("rate:c:short", 1, 10.0)]
        assert (await s.admit("c", short, None, "a", now)).admitted
        assert (await s.admit("c", RATE, None, "b", now)).admitted
        assert await s.claim("nonce:short", 5.0)
        await s.put("idem:short", "done:x", 5.0)
        await s.aclose()

    async def after() -> None:
        s = InProcessState(path, clock=lambda: now + 30)  # 30 s later
        assert set(s._logs) == {"rate:c:verify"}  # the 10 s window lapsed, the 60 s one not
        assert s._claims == {} and s._values == {}
        assert await s.claim("nonce:short", 5.0)
        await s.aclose()

    asyncio.run(before())
    asyncio.run(after())
    # The file was purged on load too, not only the memory.
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT key FROM logs").fetchall() == [("rate:c:verify",)]
        assert db.execute("SELECT key FROM claims").fetchall() == [("nonce:short",)]  # new one


def test_a_replayed_nonce_is_refused_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"

    async def before() -> None:
        s = InProcessState(path)
        await ReplayGuard(s).check_nonce("c", NONCE, str(time.time()))
        await s.put_if_absent("idem:c:k", "done:fp:body", 3600.0)
        await s.aclose()

    async def after() -> None:
        s = InProcessState(path)
        assert await _nonce_refused(ReplayGuard(s)) == "ALREADY_EXISTS NONCE_REPLAYED"
        assert await s.put_if_absent("idem:c:k", "pending:other", 3600.0) == "done:fp:body"
        await s.aclose()

    asyncio.run(before())
    asyncio.run(after())


def test_a_crash_loses_at_most_the_last_interval(tmp_path: Path) -> None:
    """No aclose (a killed process): what was counted an interval ago is on disk."""
    path = tmp_path / "state.sqlite"

    async def crashed() -> None:
        s = InProcessState(path, interval_s=0.2)
        now = time.time()
        for i in range(3):
            assert (await s.admit("c", RATE, None, f"t{i}", now)).admitted
        assert await s.claim("nonce:c:n1", 600.0)
        await asyncio.sleep(0.6)  # the writer ran; then the process "dies"
        assert s._flusher is not None
        s._flusher.cancel()

    asyncio.run(crashed())

    async def after() -> None:
        s = InProcessState(path)
        assert (await s.admit("c", RATE, None, "t4", time.time())).blocked == 0
        assert not await s.claim("nonce:c:n1", 600.0)
        await s.aclose()

    asyncio.run(after())


def test_writes_are_incremental_and_reload_what_memory_holds(tmp_path: Path) -> None:
    """Many writes with trimming in between: the file holds exactly the live windows."""
    path = tmp_path / "state.sqlite"
    t0 = time.time() - 50
    clock = [t0]

    async def run() -> InProcessState:
        s = InProcessState(path, clock=lambda: clock[0])
        for step in range(40):
            now = t0 + step
            clock[0] = now
            w = [Window("rate:c", 1000, 10.0), Window("subj:s", 1000, 10.0, member=f"m{step % 7}")]
            for i in range(3):
                await s.admit("c", w, None, f"{step}.{i}", now)
            await s.observe("c", [f"h{step % 5}"], [step % 3 == 0], 10.0, str(step), now)
            await s.flush()
        return s

    async def main() -> None:
        s = await run()
        horizon = clock[0] - 10.0
        for log in s._logs.values():
            log.trim(horizon)
        want = {
            k: (list(v.hits), dict(v.members)) for k, v in s._logs.items() if v.hits or v.members
        }
        await s.aclose()
        again = InProcessState(path, clock=lambda: clock[0])
        got = {k: (list(v.hits), dict(v.members)) for k, v in again._logs.items()}
        assert got == want
        assert list(again._logs["subj:s"].members) == list(s._logs["subj:s"].members)  # order
        await again.aclose()

    asyncio.run(main())


def test_without_a_path_nothing_is_kept(tmp_path: Path) -> None:
    async def main() -> None:
        s = InProcessState()
        assert not s.persistent
        await s.admit("c", RATE, None, "t", time.time())
        assert not s._dirty_logs and s._flusher is None  # no bookkeeping either
        await s.aclose()

    asyncio.run(main())
    assert open_state("", tmp_path / "s.sqlite").persistent  # type: ignore[attr-defined]


@pytest.mark.parametrize("crash", [False, True], ids=["shutdown", "kill"])
def test_nonces_and_windows_survive_a_redis_restart(tmp_path: Path, crash: bool) -> None:
    """Redis with appendonly yes / appendfsync everysec: a clean shutdown keeps
    everything; a kill -9 keeps what is older than about a second."""
    server = RedisServer(tmp_path / "redis").start()
    try:

        async def before() -> None:
            s = open_state(server.url)
            await ReplayGuard(s).check_nonce("c", NONCE, str(time.time()))
            now = time.time()
            for i in range(3):
                assert (await s.admit("c", RATE, None, f"t{i}", now)).admitted
            await s.aclose()

        async def after() -> None:
            s = open_state(server.url)
            assert await _nonce_refused(ReplayGuard(s)) == "ALREADY_EXISTS NONCE_REPLAYED"
            assert (await s.admit("c", RATE, None, "t4", time.time())).blocked == 0
            await s.aclose()

        asyncio.run(before())
        if crash:
            time.sleep(1.5)  # everysec: the append-only file is fsynced within a second
        server.restart(crash=crash)
        asyncio.run(after())
    finally:
        server.stop()


def test_the_redis_helper_runs_redis_as_documented(redis_server: RedisServer) -> None:
    import redis

    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        assert r.config_get("appendfsync")["appendfsync"] in ("everysec", "always")
    finally:
        r.close()
