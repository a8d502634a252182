"""Limits: per caller x RPC x dataset, per subject, in flight; tiers from plan and config."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from clients.sdk import GovgwClient, GovgwClientError
from gateway.callers import Caller
from gateway.errors import GovgwError
from gateway.limits import Limits, LimitsConfig, SubjectLimits, Tier
from gateway.plan import Obligations, Plan
from gateway.state import InProcessState, open_state
from tests.gateway.state.harness import start_guarded
from tests.gateway.state.redis_server import RedisServer
from tests.support import Harness, expect_error, free_port, make_data_dir

COUNTER = Caller("c1", "counter", "窗口", "513221")
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
PURPOSE = "户籍业务办理"


def plan(rate_tier: str = "standard") -> Plan:
    return Plan(allow=True, obligations=Obligations(rate_tier=rate_tier))


def limits(**kw) -> Limits:
    return Limits(
        {"counter": Tier(3, 60.0, 2), "strict": Tier(1, 60.0, 1)},
        subject=SubjectLimits(calls=2, callers=1, window_s=3600.0),
        **kw,
    )


async def _try(lim, caller=COUNTER, action="verify.identity", plans=None, hashes=(), tok="t"):
    try:
        async with lim.admit(caller, action, plans or {"population.basic": plan()}, hashes, tok):
            return None
    except GovgwError as e:
        return e


def test_window_per_caller_action_and_dataset() -> None:
    async def main() -> None:
        lim = limits()
        for i in range(3):
            assert await _try(lim, tok=f"a{i}") is None
        err = await _try(lim, tok="x")
        assert err is not None and err.code == EXHAUSTED and err.reason == "RATE_LIMITED"
        assert 0 < (err.retry_after_s or 0) <= 60
        # another action, another dataset, another caller: their own windows
        assert await _try(lim, action="verify.attributes") is None
        assert await _try(lim, plans={"legal_entity.basic": plan()}) is None
        assert await _try(lim, caller=replace(COUNTER, id="c2")) is None
        # a call without a dataset (the catalog) is counted too
        for i in range(3):
            assert await _try(lim, action="catalog.read", plans={}, tok=f"k{i}") is None
        assert (await _try(lim, action="catalog.read", plans={})).reason == "RATE_LIMITED"

    asyncio.run(main())


def test_tier_from_plan_obligation() -> None:
    async def main() -> None:
        lim = limits()
        strict = {"population.basic": plan("strict")}
        assert await _try(lim, plans=strict) is None
        assert (await _try(lim, plans=strict)).reason == "RATE_LIMITED"
        # an unknown tier name falls back to the caller kind's tier
        assert lim.tier_for("counter", plan("no-such-tier")).calls_per_window == 3

    asyncio.run(main())


def test_per_subject_times_and_distinct_callers() -> None:
    async def main() -> None:
        lim = limits()
        assert await _try(lim, hashes=("h1",)) is None
        other = replace(COUNTER, id="c2")
        err = await _try(lim, caller=other, hashes=("h1",))
        assert err.reason == "SUBJECT_CALLERS_LIMITED" and err.code == EXHAUSTED
        assert await _try(lim, hashes=("h1",)) is None
        assert (await _try(lim, hashes=("h1",))).reason == "SUBJECT_RATE_LIMITED"
        assert await _try(lim, caller=other, hashes=("h2",)) is None

    asyncio.run(main())


def test_in_flight_cap_and_release() -> None:
    async def main() -> None:
        lim = limits()
        async with lim.admit(COUNTER, "a", {}, (), "t1"), lim.admit(COUNTER, "b", {}, (), "t2"):
            err = await _try(lim, action="c", plans={}, tok="t3")
            assert err.reason == "TOO_MANY_IN_FLIGHT" and err.retry_after_s
        assert await _try(lim, action="c", plans={}, tok="t4") is None  # released

    asyncio.run(main())


@pytest.mark.requirement("R10")
def test_suspended_in_state_is_refused() -> None:
    async def main() -> None:
        state = InProcessState()
        lim = limits(state=state)
        await state.suspend(COUNTER.id, "NO_MATCH_RATIO")
        err = await _try(lim)
        assert err.code == grpc.StatusCode.PERMISSION_DENIED and err.reason == "CALLER_SUSPENDED"

    asyncio.run(main())


# -- through a real server, on each backend ----------------------------------
@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis-limits"))).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def own_dir(tmp_path_factory: pytest.TempPathFactory):
    # Not the shared seeded_dir: its audit file is locked by the session's gateway.
    data_dir = tmp_path_factory.mktemp("govgw-limits")
    keys, demo = make_data_dir(data_dir, persons=40, entities=10)
    return data_dir, keys, demo


@pytest.fixture(params=["memory", "redis"])
def guarded(request, own_dir, redis_url) -> Iterator[Harness]:
    data_dir, keys, demo = own_dir
    url = redis_url if request.param == "redis" else ""
    if url:
        asyncio.run(_flush(url))
    cfg = LimitsConfig(
        tiers={"counter": Tier(4, 60.0, 8), "agency": Tier(1000), "public": Tier(10)},
        subject=SubjectLimits(calls=1000, callers=100),
    )
    h = start_guarded(data_dir, keys, demo, limits=cfg, redis_url=url)
    yield h
    h.stop()


async def _flush(url: str) -> None:
    s = open_state(url)
    await s._r.flushall()  # type: ignore[attr-defined]
    await s.aclose()


def test_over_the_limit_is_resource_exhausted_with_retry_info_and_audited(
    guarded: Harness,
) -> None:
    adult = guarded.demo["adult_resident"]
    with guarded.client("counter-songpan") as gw:
        for _ in range(4):
            gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
        e = expect_error(
            lambda: gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE),
            EXHAUSTED,
            "RATE_LIMITED",
        )
    assert e.retry_after_s is not None and 0 < e.retry_after_s <= 60
    rec = next(r for r in guarded.audit_records() if r["request_id"] == e.request_id)
    assert rec["outcome"] == "RESOURCE_EXHAUSTED" and rec["reason"] == "RATE_LIMITED"
    assert rec["caller"] == "counter-songpan"
    assert adult["id_number"] not in guarded.audit_text()


# -- operators' configuration file -------------------------------------------
GUARD_TOML = """
[tiers.counter]
calls_per_window = 2
window_s = 30
[tiers.strict]
max_in_flight = 2
[subject]
calls = 7
[oracle]
min_answers = 12
"""


def test_guard_config_file(tmp_path: Path) -> None:
    from gateway.config import ConfigError, load_guard_config
    from gateway.limits import DEFAULT_TIERS

    f = tmp_path / "limits.toml"
    f.write_text(GUARD_TOML)
    limits, oracle = load_guard_config(f)
    assert limits.tiers["counter"] == Tier(2, 30.0, DEFAULT_TIERS["counter"].max_in_flight)
    assert limits.tiers["strict"].calls_per_window == DEFAULT_TIERS["strict"].calls_per_window
    assert limits.tiers["strict"].max_in_flight == 2
    assert limits.tiers["agency"] == DEFAULT_TIERS["agency"]
    assert limits.subject == SubjectLimits(calls=7)
    assert oracle.min_answers == 12 and oracle.max_no_match_ratio == 0.5
    for bad in (
        "[subject]\ncals = 3\n",
        "[oracel]\nmin_answers = 1\n",
        "[tiers.x]\nwindow_s = 1\n",
    ):
        f.write_text(bad)
        with pytest.raises(ConfigError):
            load_guard_config(f)


def test_serve_takes_the_limits_config(own_dir, tmp_path: Path) -> None:
    """`govgw serve --limits-config`: the configured tier is what callers meet."""
    data_dir, keys, demo = own_dir
    f = tmp_path / "limits.toml"
    f.write_text(GUARD_TOML)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "serve", "--data-dir", str(data_dir),
         "--listen", f"127.0.0.1:{port}", "--limits-config", str(f)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        adult = demo["adult_resident"]
        with GovgwClient(f"127.0.0.1:{port}", api_key=keys["counter-wenchuan"]) as gw:
            deadline = time.monotonic() + 60
            while True:  # first answer once it is up
                try:
                    gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
                    break
                except GovgwClientError:
                    assert time.monotonic() < deadline and proc.poll() is None
                    time.sleep(0.2)
            gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
            expect_error(
                lambda: gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE),
                EXHAUSTED,
                "RATE_LIMITED",
            )
    finally:
        proc.terminate()
        proc.wait(30)


def test_each_caller_kind_has_its_own_default_tier() -> None:
    from gateway.limits import DEFAULT_TIERS

    lim = Limits()
    for kind in ("agency", "counter", "public", "admin"):
        assert lim.tier_for(kind) == DEFAULT_TIERS[kind]
    # An unknown kind gets the most restrictive caller tier, never the most generous.
    assert lim.tier_for("robot") == DEFAULT_TIERS["public"]
