"""VerifyIdentityBatch a chunk at a time (`gateway/batch.py` `_Chunk`), on both state
backends: the limits, the distinct-subject budget and suspensions hold across chunk
boundaries; a suspension made while a batch runs, or a state backend that stops
answering, refuses the rest at once; no in-flight slot is left held.

`after_first_chunk` runs an action right after the batch's first chunk has been
reported to the enumeration monitor: what a concurrent call or an administrator
does meanwhile, at a known point instead of a racing thread."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from clients.sdk import GovgwClientError
from gateway.limits import LimitsConfig, SubjectLimits, Tier
from gateway.oracle import Oracle, OracleConfig, Suspension
from tests.gateway.state.harness import start_guarded
from tests.gateway.state.redis_server import RedisServer
from tests.integration.test_verify_batch_guarded import absent_id_numbers
from tests.support import Harness, make_data_dir

PURPOSE = "户籍业务办理"
OPEN = LimitsConfig(
    tiers={"counter": Tier(100_000), "agency": Tier(100_000), "public": Tier(100)},
    subject=SubjectLimits(calls=100_000, callers=100),
)


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """ "" for the in-process state, else a flushed Redis's URL."""
    if request.param == "memory":
        return ""
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    return server.url


def start(tmp_path: Path, redis_url: str, **config: Any) -> Harness:
    keys, demo = make_data_dir(tmp_path / "data")
    config.setdefault("limits", OPEN)
    config.setdefault("oracle", OracleConfig(min_answers=100_000))
    return start_guarded(tmp_path / "data", keys, demo, redis_url=redis_url, **config)


def people(h: Harness) -> list[tuple[str, str]]:
    ps = [h.demo[k] for k in ("adult_resident", "minor", "assistance_recipient")]
    return [(p["name"], p["id_number"]) for p in ps]


def after_first_chunk(oracle: Oracle, action: Callable[[], Awaitable[None]]) -> None:
    observe_many = oracle.observe_many
    done: list[bool] = []

    async def then(*args: Any, **kw: Any) -> Any:
        out = await observe_many(*args, **kw)
        if not done:
            done.append(True)
            await action()
        return out

    oracle.observe_many = then  # type: ignore[method-assign]


@pytest.mark.requirement("R10")
@pytest.mark.parametrize("who", ["caller", "operator"])
def test_a_suspension_made_while_a_batch_runs_refuses_its_later_items(
    tmp_path: Path, redis_url: str, who: str
) -> None:
    h = start(tmp_path, redis_url)
    operator = "clerk-7" if who == "operator" else ""
    oracle = h.parts.oracle
    assert oracle is not None

    async def suspend() -> None:
        await oracle.suspend(Suspension("agency-civil", "ADMINISTRATOR", "test", operator))

    after_first_chunk(oracle, suspend)
    items = people(h) * 100  # 300 items: chunks 0-127, 128-255, 256-299
    try:
        with h.client("agency-civil", operator=operator, verify_receipts=False) as gw:
            results = list(gw.verify_identity_batch(items, purpose=PURPOSE))
            with pytest.raises(GovgwClientError) as unary:
                gw.verify_identity(*items[0], purpose=PURPOSE)
    finally:
        h.stop()
    expected = "OPERATOR_SUSPENDED" if operator else "CALLER_SUSPENDED"
    assert unary.value.reason == expected
    assert all(r.refusal is None for r in results[:128])
    assert {r.refusal.reason if r.refusal else "" for r in results[128:]} == {expected}


def test_a_state_backend_that_stops_answering_fails_the_rest_at_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Redis paused (a partition): the chunk that meets it waits out one socket
    timeout; every later item is refused STATE_UNAVAILABLE without asking again
    (not a timeout per chunk: 11 chunks would take 11 s and outlast the deadline)."""
    redis_server.flush()
    h = start(tmp_path, redis_server.url)
    proc = redis_server.proc
    assert proc is not None and h.parts.oracle is not None
    state = h.parts.limits.state
    admit_many = state.admit_many
    asked: list[int] = []

    async def counted(*args: Any, **kw: Any) -> Any:
        asked.append(len(args[1]))
        return await admit_many(*args, **kw)

    state.admit_many = counted  # type: ignore[method-assign]

    async def pause() -> None:
        os.kill(proc.pid, signal.SIGSTOP)

    after_first_chunk(h.parts.oracle, pause)
    items = people(h) * 427  # 1,281 items: 11 chunks
    try:
        with h.client("agency-civil", verify_receipts=False, timeout_s=60) as gw:
            results = list(gw.verify_identity_batch(items, purpose=PURPOSE, batch_size=2_000))
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        h.stop()
    assert all(r.refusal is None for r in results[:128])
    assert {r.refusal.reason if r.refusal else "" for r in results[128:]} == {"STATE_UNAVAILABLE"}
    assert asked == [128, 128]  # the first chunk, and the one that met the pause


def test_redis_killed_mid_batch_fails_each_later_item_closed(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.flush()
    h = start(tmp_path, redis_server.url)
    proc = redis_server.proc
    assert proc is not None and h.parts.oracle is not None

    async def kill() -> None:
        proc.kill()
        proc.wait()

    after_first_chunk(h.parts.oracle, kill)
    caplog.set_level(logging.DEBUG)
    try:
        with h.client("agency-civil", verify_receipts=False) as gw:
            results = list(gw.verify_identity_batch(people(h) * 200, purpose=PURPOSE))
        records = [x for x in h.audit_records() if x["request_id"] == results[0].request_id]
    finally:
        h.stop()
        redis_server.start()
    assert [r.index for r in results] == list(range(600))
    assert all(r.refusal is None and r.matched for r in results[:128])
    assert {(r.refusal.code, r.refusal.reason) for r in results[128:] if r.refusal} == {
        ("UNAVAILABLE", "STATE_UNAVAILABLE")
    }
    assert all(r.refusal is not None for r in results[128:])
    assert [x["outcome"] for x in records] == ["OK"] * 128 + ["UNAVAILABLE"] * 472
    assert "Traceback" not in caplog.text and "ERROR" not in caplog.text


@pytest.mark.requirement("R10")
def test_limits_and_the_budget_hold_across_chunk_boundaries(tmp_path: Path, redis_url: str) -> None:
    h = start(
        tmp_path,
        redis_url,
        limits=LimitsConfig(
            tiers={"agency": Tier(200), "counter": Tier(10_000)},
            subject=SubjectLimits(calls=1_000, callers=1),
        ),
        oracle=OracleConfig(min_answers=100_000, max_subjects=150),
    )
    absent = absent_id_numbers(300)
    try:
        with h.client("agency-civil", verify_receipts=False) as gw:
            # 150 distinct subjects fit; the 151st (index 150, chunk 1) suspends.
            items = [("王伟", i) for i in absent[:170]]
            first = [r.refusal.reason if r.refusal else "OK" for r in gw.verify_identity_batch(
                items, purpose=PURPOSE
            )]  # fmt: skip
        with h.client("agency-far", verify_receipts=False) as gw:
            # 200 calls per window; absent[0] was asked by agency-civil (1 caller each)
            items = people(h) * 80 + [("王伟", absent[0])]
            second = [r.refusal.reason if r.refusal else "OK" for r in gw.verify_identity_batch(
                items, purpose=PURPOSE
            )]  # fmt: skip
    finally:
        h.stop()
    assert first == ["OK"] * 150 + ["CALLER_SUSPENDED"] * 20
    assert second == ["OK"] * 200 + ["RATE_LIMITED"] * 41  # the rate window is checked first


def test_a_denied_batch_gives_its_slot_back(tmp_path: Path, redis_url: str) -> None:
    h = start(
        tmp_path,
        redis_url,
        limits=LimitsConfig(
            tiers={"public": Tier(10_000, max_in_flight=1)},
            subject=SubjectLimits(calls=1_000, callers=10),
        ),
    )
    items = people(h) * 50
    try:
        with h.client("public-portal", verify_receipts=False) as gw:
            results = list(gw.verify_identity_batch(items, purpose=PURPOSE))
            with pytest.raises(GovgwClientError) as again:
                gw.verify_identity(*items[0], purpose=PURPOSE)
    finally:
        h.stop()
    assert len(results) == 150
    assert {r.refusal.code if r.refusal else "" for r in results} == {"PERMISSION_DENIED"}
    assert again.value.code.name == "PERMISSION_DENIED"  # not TOO_MANY_IN_FLIGHT: free


@pytest.mark.requirement("R10")
def test_an_item_that_suspends_operator_and_caller_refuses_the_rest_as_the_caller(
    tmp_path: Path, redis_url: str
) -> None:
    """One item crosses the operator's and the hall's NO_MATCH threshold at once: the
    items after it are refused CALLER_SUSPENDED, as the caller's next call is."""
    h = start(
        tmp_path,
        redis_url,
        oracle=OracleConfig(min_answers=2, max_no_match_ratio=0.5, hall_scale=5.0),
    )  # the hall's min_answers: 10
    absent = absent_id_numbers(20)
    try:
        gw = h.client("counter-songpan", verify_receipts=False)
        # Nine misses by eight operators and op0: no operator at 2 answers, the hall at 9.
        for i in range(1, 9):
            assert (
                not gw.as_operator(f"op{i}")
                .verify_identity("王伟", absent[i], purpose=PURPOSE)
                .matched
            )
        op0 = gw.as_operator("op0")
        assert not op0.verify_identity("王伟", absent[0], purpose=PURPOSE).matched
        # Item 0 is op0's 2nd miss and the hall's 10th: both thresholds at once.
        items = [("王伟", absent[k]) for k in (10, 11, 12)]
        results = list(op0.verify_identity_batch(items, purpose=PURPOSE))
        with pytest.raises(GovgwClientError) as unary:
            op0.verify_identity("王伟", absent[13], purpose=PURPOSE)
        events = [x for x in h.audit_records() if x["request_id"] == results[0].request_id]
    finally:
        h.stop()
    assert results[0].refusal is None
    suspended = [e for e in events if e["action"] == "caller.suspend"]
    assert sorted((e.get("operator", ""), e["reason"]) for e in suspended) == [
        ("", "NO_MATCH_RATIO"),
        ("op0", "NO_MATCH_RATIO"),
    ]
    assert unary.value.reason == "CALLER_SUSPENDED"
    assert [r.refusal.reason for r in results[1:] if r.refusal] == ["CALLER_SUSPENDED"] * 2
