"""The batch forms of the state contract (admit_many, reserve_many, observe_many):
each is what the single method does item after item, on both backends; Redis
does it in one round trip per chunk of a batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.state import InProcessState, Slot, StateBackend, Window
from gateway.state.base import ADMITTED, IN_FLIGHT_FULL, SUSPENDED
from gateway.state.redisstate import RedisState
from tests.gateway.state.redis_server import RedisServer

# An item: which of four windows it counts in (two count windows, two distinct
# ones), with the member of a distinct window drawn from three callers.
WINDOWS = [
    lambda m: Window("rate", 4, 10.0),
    lambda m: Window("subj:a:calls", 2, 10.0),
    lambda m: Window("subj:a:callers", 2, 10.0, member=m),
    lambda m: Window("subj:b:callers", 1, 10.0, member=m),
]
items_st = st.lists(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["x", "y", "z"])), max_size=3),
    min_size=1,
    max_size=12,
)


def _windows(item: list[tuple[int, str]]) -> list[Window]:
    return [WINDOWS[w](m) for w, m in dict(item).items()]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=items_st, chunk=st.integers(1, 5))
def test_admit_many_is_admit_item_after_item(
    redis_server: RedisServer, items: list[list[tuple[int, str]]], chunk: int
) -> None:
    """Property: admitting a batch's items in chunks gives each item the verdict
    `admit` gives it one call at a time, on either backend, and every item counts
    (items of one call are not one member of a count window)."""
    windows = [_windows(i) for i in items]

    async def singles(s: StateBackend) -> list[int]:
        return [(await s.admit("c", w, None, f"t{i}", 5.0)).blocked for i, w in enumerate(windows)]

    async def chunked(s: StateBackend) -> list[int]:
        out: list[int] = []
        for at in range(0, len(windows), chunk):
            verdicts = await s.admit_many("c", windows[at : at + chunk], None, f"b@{at}", 5.0)
            out += [v.blocked for v in verdicts]
        return out

    async def main() -> list[list[int]]:
        traces = []
        for make in (InProcessState, lambda: RedisState(redis_server.url)):
            for trace in (singles, chunked):
                redis_server.flush()
                s = make()
                try:
                    traces.append(await trace(s))
                finally:
                    await s.aclose()
        return traces

    mem_single, mem_many, red_single, red_many = asyncio.run(main())
    assert mem_many == mem_single == red_single == red_many
    counted = [w for w, v in zip(windows, mem_single, strict=True) if v == ADMITTED]
    assert sum(1 for w in counted for x in w if x.key == "rate") <= 4


def test_admit_many_takes_the_slot_once_and_refuses_all_when_it_cannot(run) -> None:
    async def body(s: StateBackend) -> None:
        slot, w = Slot("inflight:c", 1), [Window("r", 2, 10.0)]
        verdicts = await s.admit_many("c", [w, w, w], slot, "b@0", 1.0)
        assert [v.blocked for v in verdicts] == [ADMITTED, ADMITTED, 0]  # the third: window 0
        assert verdicts[2].retry_after_s == pytest.approx(10.0, abs=0.01)
        # The chunk holds the caller's one slot: another call or chunk is refused whole.
        full = await s.admit_many("c", [[], []], slot, "b@3", 1.0)
        assert [v.blocked for v in full] == [IN_FLIGHT_FULL] * 2
        await s.release(slot, "b@0")
        assert [v.blocked for v in await s.admit_many("c", [[]], slot, "b@5", 1.0)] == [ADMITTED]
        await s.release(slot, "b@5")
        await s.suspend("c", "test")
        gone = await s.admit_many("c", [[], w], slot, "b@6", 2.0)
        assert [v.blocked for v in gone] == [SUSPENDED] * 2
        await s.reinstate("c")
        # Nothing was counted for the refused items: the window's two hits are its own.
        assert [v.blocked for v in await s.admit_many("c", [w], None, "b@8", 2.0)] == [0]

    run(body)


def test_reserve_many_stops_at_the_first_item_past_the_budget(run) -> None:
    async def body(s: StateBackend) -> None:
        items = [["a"], ["a", "b"], ["c"], ["d", "e"], ["f"]]
        # Budget 4: a, b, c fit; the fourth item would make 5; it and the rest are not counted.
        assert await s.reserve_many("c", items, 4, 100.0, now=1.0) == 3
        assert await s.reserve_subjects("c", ["d"], 4, 100.0, now=2.0) == 4  # e never counted
        assert await s.reserve_many("c", [["a"], ["d"], []], 4, 100.0, now=3.0) == 3  # known
        assert await s.reserve_many("c", [["g"]], 4, 100.0, now=3.0) == 0
        assert await s.reserve_many("c", [["g"]], 4, 100.0, now=103.5, since=0.0) == 1  # lapsed

    run(body)


def test_observe_many_counts_in_order_up_to_the_crossing_item(run) -> None:
    async def body(s: StateBackend) -> None:
        subjects = [[f"h{i}"] for i in range(10)]
        misses = [[i >= 3] for i in range(10)]  # three hits, then misses
        # Stop past 4 answers with more than half missed: after item 5, 3 of 6 missed
        # (not more than half); item 6 (4 of 7) crosses.
        n, obs = await s.observe_many("c", subjects, misses, 100.0, "b@0", 1.0, stop=(4, 0.5))
        assert n == 7
        assert (obs.answered, obs.no_match, obs.distinct_subjects) == (7, 4, 7)
        # Items 7 to 9 were counted nowhere: one more answer is the eighth.
        one = await s.observe("c", ["h7"], [False], 100.0, "x", 2.0)
        assert (one.answered, one.no_match, one.distinct_subjects) == (8, 4, 8)
        # Without a threshold every item counts; the slot is given back first.
        slot = Slot("inflight:c", 1)
        assert (await s.admit("c", [], slot, "b@10", 3.0)).admitted
        n, obs = await s.observe_many(
            "c", subjects, [[True]] * 10, 100.0, "b@10", 3.0, release=slot
        )
        assert (n, obs.answered, obs.no_match) == (10, 18, 14)
        assert (await s.admit("c", [], slot, "next", 3.0)).admitted

    run(body)


_subject = st.sampled_from(["", "a", "b", "c", "d", "e"])
_steps_st = st.lists(
    st.tuples(
        st.one_of(
            st.tuples(
                st.just("reserve"),
                st.lists(st.lists(_subject, max_size=3), max_size=6),
                st.integers(0, 6),
            ),
            st.tuples(
                st.just("observe"),
                st.lists(st.lists(st.tuples(_subject, st.booleans()), max_size=3), max_size=6),
                st.tuples(st.integers(0, 6), st.sampled_from([0.0, 0.25, 0.5, 2 / 3, 1.0])),
            ),
            st.tuples(
                st.just("admit"),
                st.lists(
                    st.lists(
                        st.sampled_from(["r", "s:a", "s:b", "m:a", "m:b"]), max_size=3, unique=True
                    ),
                    max_size=5,
                ),
                st.sampled_from(["x", "y"]),
            ),
        ),
        st.floats(0, 4),  # time passing before the step
        st.sampled_from([None, None, 0.5, 1.0, 3.0]),  # a reinstatement this long ago
    ),
    max_size=12,
)


def _named_windows(names: list[str], member: str) -> list[Window]:
    shapes = {"r": (5, ""), "s": (2, ""), "m": (1, member)}
    return [Window(n, shapes[n[0]][0], 5.0, member=shapes[n[0]][1]) for n in names]


async def _trace(s: StateBackend, steps: list[Any]) -> list[Any]:
    now, since, out = 1000.0, 0.0, []
    slot = Slot("inflight:c", 2)
    for k, ((kind, a, b), dt, reinstated) in enumerate(steps):
        now += dt
        # a scope's `since` (its reinstatement) never goes back and is never after now
        since = max(since, 0.0 if reinstated is None else now - reinstated)
        if kind == "reserve":
            out.append(await s.reserve_many("c", a, b, 5.0, now, since))
        elif kind == "observe":
            subjects = [[x for x, _ in it] for it in a]
            misses = [[m for _, m in it] for it in a]
            out.append(
                await s.observe_many("c", subjects, misses, 5.0, f"t{k}", now, since, stop=b)
            )
        else:
            verdicts = await s.admit_many(
                "c", [_named_windows(w, b) for w in a], slot, f"t{k}", now
            )
            out.append([(v.blocked, round(v.retry_after_s, 6)) for v in verdicts])
            await s.release(slot, f"t{k}")
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_steps_st)
def test_the_lua_scripts_and_the_in_process_state_agree(
    redis_server: RedisServer, steps: list[Any]
) -> None:
    """Property: any sequence of the batch forms -- time moving on, reinstatements,
    empty and repeated subjects, ratios on the boundary -- gives the same results on
    Redis (the Lua scripts) as in-process."""

    async def main() -> tuple[list[Any], list[Any]]:
        redis_server.flush()
        mem, red = InProcessState(), RedisState(redis_server.url)
        try:
            return await _trace(mem, steps), await _trace(red, steps)
        finally:
            await mem.aclose()
            await red.aclose()

    in_process, on_redis = asyncio.run(main())
    assert in_process == on_redis
