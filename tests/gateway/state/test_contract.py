"""One contract, two backends: the in-process state and Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.state import InProcessState, Slot, StateBackend, Window, open_state
from gateway.state.base import ADMITTED, IN_FLIGHT_FULL, SUSPENDED
from gateway.state.redisstate import RedisState
from tests.gateway.state.redis_server import RedisServer

Body = Callable[[StateBackend], Awaitable[None]]


def test_open_state_picks_the_backend(redis_server: RedisServer, monkeypatch) -> None:
    monkeypatch.delenv("GOVGW_REDIS_URL", raising=False)
    assert isinstance(open_state(""), InProcessState)
    assert isinstance(open_state(redis_server.url), RedisState)
    monkeypatch.setenv("GOVGW_REDIS_URL", redis_server.url)
    assert isinstance(open_state(None), RedisState)
    with pytest.raises(ValueError):
        open_state("http://127.0.0.1:1")


def test_window_counts_then_refuses_with_retry(run) -> None:
    async def body(s: StateBackend) -> None:
        w = [Window("w:a", limit=3, window_s=10.0)]
        now = 1000.0
        for i in range(3):
            assert (await s.admit("c1", w, None, f"t{i}", now + i)).admitted
        v = await s.admit("c1", w, None, "t9", now + 3)
        assert v.blocked == 0
        assert v.retry_after_s == pytest.approx(7.0, abs=0.01)  # the oldest hit lapses at 1010
        assert (await s.admit("c1", w, None, "t10", now + 10.5)).admitted  # it slid

    run(body)


def test_all_or_nothing(run) -> None:
    """A call refused by its second window is not counted in its first."""

    async def body(s: StateBackend) -> None:
        wide, narrow = Window("w:wide", 100, 60.0), Window("w:narrow", 1, 60.0)
        assert (await s.admit("c", [wide, narrow], None, "a", 1.0)).admitted
        for i in range(5):
            assert (await s.admit("c", [wide, narrow], None, f"b{i}", 2.0)).blocked == 1
        # wide holds exactly one hit: 99 more fit
        for i in range(99):
            assert (await s.admit("c", [wide], None, f"c{i}", 3.0)).admitted
        assert (await s.admit("c", [wide], None, "d", 3.0)).blocked == 0

    run(body)


def test_distinct_members(run) -> None:
    """At most 2 distinct callers per subject; a caller already counted may come back."""

    async def body(s: StateBackend) -> None:
        def w(caller: str) -> list[Window]:
            return [Window("subj:h1:callers", 2, 3600.0, member=caller)]

        assert (await s.admit("a", w("a"), None, "1", 1.0)).admitted
        assert (await s.admit("b", w("b"), None, "2", 2.0)).admitted
        assert (await s.admit("a", w("a"), None, "3", 3.0)).admitted
        v = await s.admit("c", w("c"), None, "4", 4.0)
        assert v.blocked == 0 and v.retry_after_s == pytest.approx(3598.0, abs=0.01)

    run(body)


def test_slot_caps_in_flight_and_lapses(run) -> None:
    async def body(s: StateBackend) -> None:
        slot = Slot("inflight:c", limit=2, ttl_s=5.0)
        assert (await s.admit("c", [], slot, "x", 1.0)).admitted
        assert (await s.admit("c", [], slot, "y", 1.0)).admitted
        assert (await s.admit("c", [], slot, "z", 1.0)).blocked == IN_FLIGHT_FULL
        await s.release(slot, "x")
        assert (await s.admit("c", [], slot, "z", 1.0)).admitted
        # y and z were never released (a crashed process): they lapse after the ttl
        assert (await s.admit("c", [], slot, "q", 7.0)).admitted

    run(body)


def test_observe_can_release_the_slot_in_the_same_step(run) -> None:
    async def body(s: StateBackend) -> None:
        slot = Slot("inflight:c", limit=1, ttl_s=30.0)
        assert (await s.admit("c", [], slot, "req1", 1.0)).admitted
        assert (await s.admit("c", [], slot, "req2", 1.0)).blocked == IN_FLIGHT_FULL
        await s.observe("c", ["h"], [False], 100.0, "req1", now=2.0, release=slot)
        assert (await s.admit("c", [], slot, "req2", 3.0)).admitted

    run(body)


@pytest.mark.requirement("R10")
def test_suspension(run) -> None:
    async def body(s: StateBackend) -> None:
        assert await s.suspend("c", "NO_MATCH_RATIO") is True
        assert await s.suspend("c", "NO_MATCH_RATIO") is False
        assert await s.suspended() == {"c": "NO_MATCH_RATIO"}
        assert (await s.admit("c", [Window("w", 5, 1.0)], None, "t", 1.0)).blocked == SUSPENDED
        assert (await s.admit("other", [], None, "t", 1.0)).blocked == ADMITTED
        assert await s.reinstate("c") is True
        assert await s.reinstate("c") is False
        assert await s.suspended() == {}
        assert (await s.admit("c", [], None, "t", 1.0)).admitted

    run(body)


def test_observe_counts_answers_misses_and_spread(run) -> None:
    async def body(s: StateBackend) -> None:
        o = None
        for i in range(6):
            o = await s.observe("c", [f"h{i % 4}"], [i % 3 != 0], window_s=100.0,
                                token=f"t{i}", now=10.0 + i)  # fmt: skip
        assert o is not None
        assert (o.answered, o.no_match, o.distinct_subjects) == (6, 4, 4)
        assert o.no_match_ratio == pytest.approx(4 / 6)
        late = await s.observe("c", ["h9"], [False], window_s=100.0, token="z", now=112.5)
        assert (late.answered, late.no_match, late.distinct_subjects) == (
            4,
            2,
            4,
        )  # h3, h0, h1 (refreshed) and h9

    run(body)


def test_observe_forgets_what_came_before_since(run) -> None:
    """A reinstated caller starts afresh: answers before `since` no longer count."""

    async def body(s: StateBackend) -> None:
        for i in range(5):
            await s.observe("c", [f"h{i}"], [True], 100.0, f"t{i}", now=10.0 + i)
        o = await s.observe("c", ["h9"], [False], 100.0, "z", now=20.0, since=15.0)
        assert (o.answered, o.no_match, o.distinct_subjects) == (1, 0, 1)

    run(body)


def test_claims_are_one_time(run) -> None:
    async def body(s: StateBackend) -> None:
        assert await s.claim("nonce:abc", 0.3) is True
        assert await s.claim("nonce:abc", 0.3) is False
        assert await s.claim("nonce:def", 0.3) is True
        await asyncio.sleep(0.4)
        assert await s.claim("nonce:abc", 0.3) is True

    run(body)


def test_grants_version_and_invalidation(run) -> None:
    async def body(s: StateBackend) -> None:
        seen: list[str] = []
        got = asyncio.Event()

        def on(msg: str) -> None:
            seen.append(msg)
            got.set()

        await s.watch(on)
        v0 = await s.grants_version()
        started = time.monotonic()
        assert await s.bump_grants_version() == v0 + 1
        await asyncio.wait_for(got.wait(), 1.0)  # within 1 s, the brief's bound
        assert time.monotonic() - started < 1.0
        assert f"grants:{v0 + 1}" in seen
        await s.ping()

    run(body)


def test_invalidation_reaches_another_process_client(redis_server: RedisServer) -> None:
    """Two RedisState objects stand in for two gateway processes."""

    async def main() -> None:
        redis_server.flush()
        a, b = RedisState(redis_server.url), RedisState(redis_server.url)
        got = asyncio.Event()
        await b.watch(lambda m: got.set())
        await a.suspend("c", "manual")
        assert await b.suspended() == {"c": "manual"}
        await a.bump_grants_version()
        await asyncio.wait_for(got.wait(), 1.0)
        await a.aclose()
        await b.aclose()

    asyncio.run(main())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limit=st.integers(min_value=0, max_value=6),
    gaps=st.lists(st.floats(min_value=0.0, max_value=4.0), min_size=1, max_size=25),
)
def test_backends_agree(redis_server: RedisServer, limit: int, gaps: list[float]) -> None:
    """Property: for any call timing, both backends admit exactly the same calls,
    and no window of 10 s ever holds more than `limit` admitted calls."""

    async def trace(s: StateBackend) -> list[bool]:
        out, now = [], 0.0
        for i, g in enumerate(gaps):
            now += g
            out.append((await s.admit("c", [Window("p", limit, 10.0)], None, str(i), now)).admitted)
        return out

    async def main() -> tuple[list[bool], list[bool]]:
        redis_server.flush()
        mem, red = InProcessState(), RedisState(redis_server.url)
        try:
            return await trace(mem), await trace(red)
        finally:
            await red.aclose()

    a, b = asyncio.run(main())
    assert a == b
    times = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    admitted = [t for t, ok in zip(times, a, strict=True) if ok]
    for t in admitted:
        assert sum(1 for u in admitted if t - 10.0 < u <= t) <= limit


def test_in_process_state_forgets_lapsed_subjects() -> None:
    """One log per subject asked about: lapsed ones are swept, memory does not only grow."""
    from gateway.state.memory import SWEEP_EVERY

    async def main() -> None:
        s = InProcessState()
        for i in range(SWEEP_EVERY - 1):
            await s.admit("c", [Window(f"subj:{i}:calls", 5, 10.0)], None, str(i), 1.0)
        assert len(s._logs) == SWEEP_EVERY - 1
        await s.admit("c", [Window("subj:new:calls", 5, 10.0)], None, "x", 100.0)
        assert set(s._logs) == {"subj:new:calls"}

    asyncio.run(main())


def test_in_process_log_trims_members_by_last_time_without_scanning() -> None:
    from gateway.state.window_log import WindowLog

    log = WindowLog()
    for i, member in enumerate(["a", "b", "c"]):
        log.see(member, float(i))
    log.see("a", 5.0)  # seen again: now the freshest
    assert log.oldest(distinct=True) == 1.0  # b
    log.trim(1.5)
    assert list(log.members) == ["c", "a"]
    log.trim(4.0)
    assert log.members == {"a": 5.0} and log.size(distinct=True) == 1


def test_observe_counts_each_answer_of_a_batch(run) -> None:
    """A batch's answers count one by one: 1,000 subjects in one call are 1,000 answers."""

    async def body(s: StateBackend) -> None:
        subjects = [f"h{i}" for i in range(50)]
        o = await s.observe("c", subjects, [i % 5 == 0 for i in range(50)], 100.0, "b1", now=1.0)
        assert (o.answered, o.no_match, o.distinct_subjects) == (50, 10, 50)
        o = await s.observe("c", subjects[:10], [True] * 10, 100.0, "b2", now=2.0)
        assert (o.answered, o.no_match, o.distinct_subjects) == (60, 20, 50)

    run(body)


def test_reserve_subjects_is_all_or_nothing(run) -> None:
    """The distinct-subject budget is reserved before a read: past the limit, none of the
    call's subjects is counted; subjects already counted cost nothing again."""

    async def body(s: StateBackend) -> None:
        assert await s.reserve_subjects("c", ["a", "b", "c"], 4, 100.0, now=1.0) == 3
        assert await s.reserve_subjects("c", ["a", "b"], 4, 100.0, now=2.0) == 3  # known
        assert await s.reserve_subjects("c", ["d", "e"], 4, 100.0, now=3.0) == -1  # 5 > 4
        assert await s.reserve_subjects("c", ["d", "d"], 4, 100.0, now=4.0) == 4  # e not kept
        assert await s.reserve_subjects("c", ["e"], 4, 100.0, now=5.0) == -1
        # The window moves on: a, b, c (seen at 1-2) lapse by 103.
        assert await s.reserve_subjects("c", ["e"], 4, 100.0, now=103.5) == 2
        # A reinstatement (since) forgets what came before.
        assert await s.reserve_subjects("c", ["f"], 4, 100.0, now=104.0, since=104.0) == 1

    run(body)
