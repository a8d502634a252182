"""PolicyRuntime: follows the active pointer within a second, keeps the last good version."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.grants import GrantStore
from gateway.policy.bundle import bundle_from_files, read_policy_files
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine
from gateway.policy.runtime import PolicyRuntime
from gateway.policy.versions import VersionStore

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
AGENCY = {"id": "a", "kind": "agency", "department": "d", "region": "513221"}


def variant(tag: str, *, deny_lookups: bool = False):
    files = dict(read_policy_files(POLICIES))
    files[f"tests/{tag}_test.rego"] = f"package govgw.{tag}_test\n".encode()
    if deny_lookups:
        share = files["share.rego"].decode()
        files["share.rego"] = share.replace(
            'ds.share_class == "unconditional"', 'ds.share_class == "never"'
        ).encode()
    return bundle_from_files(files)


def decide(d: Decider):
    return d.decide(
        caller=AGENCY, action="lookup", dataset="population.basic", purpose="p", now=NOW
    )


@pytest.fixture
def setup(tmp_path: Path):
    store = VersionStore(tmp_path / "policy")
    base = variant("base")
    decider = Decider(RegorusEngine(base), GrantStore(tmp_path / "grants.json"))
    runtime = PolicyRuntime(decider, store, RegorusEngine, poll_s=0.05)
    runtime.start()
    yield store, decider, runtime
    runtime.stop()


def activate(store: VersionStore, bundle) -> float:
    info = store.create(bundle, author="t", reason="r")
    store.set_active(info.version, actor="t", action="activate", reason="r")
    return time.monotonic()


def wait_for(fn, within: float = 1.0) -> float:
    start = time.monotonic()
    while not fn():
        assert time.monotonic() - start < within, "not within the deadline"
        time.sleep(0.01)
    return time.monotonic() - start


def test_a_new_pointer_is_served_within_a_second(setup) -> None:
    store, decider, runtime = setup
    assert decide(decider).allow
    new = variant("new", deny_lookups=True)
    activate(store, new)
    wait_for(lambda: decider.engine.version == new.version)
    plan = decide(decider)
    assert not plan.allow and plan.policy_version == new.version
    status = runtime.status()
    assert (status.serving, status.active, status.seq, status.last_error) == (
        new.version,
        new.version,
        1,
        "",
    )


def test_a_version_that_fails_to_load_leaves_the_last_good_one(setup) -> None:
    store, decider, runtime = setup
    good = variant("good")
    activate(store, good)
    wait_for(lambda: decider.engine.version == good.version)
    bad = variant("bad")
    info = store.create(bad, author="t", reason="r")
    (store.bundle_dir(info.version) / "share.rego").write_text("package govgw.share\nx := +\n")
    store.set_active(info.version, actor="t", action="activate", reason="r")
    wait_for(lambda: runtime.status().last_error != "")
    assert decider.engine.version == good.version and decide(decider).allow
    assert "do not match its manifest" in runtime.status().last_error
    later = variant("later")
    activate(store, later)
    wait_for(lambda: decider.engine.version == later.version)
    assert runtime.status().last_error == ""


def test_swaps_run_on_the_loop_and_decisions_never_mix_versions(tmp_path: Path) -> None:
    """Decisions on the loop thread during swaps: each sees one whole version."""
    store = VersionStore(tmp_path / "policy")
    a, b = variant("a"), variant("b", deny_lookups=True)
    decider = Decider(RegorusEngine(a), GrantStore(tmp_path / "grants.json"))
    runtime = PolicyRuntime(decider, store, RegorusEngine, poll_s=0.02)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runtime.start(loop)
    seen: list[tuple[str, bool]] = []

    async def traffic() -> None:
        for _ in range(400):
            plan = decide(decider)
            seen.append((plan.policy_version, plan.allow))
            await asyncio.sleep(0.002)

    done = asyncio.run_coroutine_threadsafe(traffic(), loop)
    for i in range(6):
        activate(store, b if i % 2 == 0 else a)
        time.sleep(0.1)
    done.result(timeout=10)
    runtime.stop()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    assert {v for v, _ in seen} == {a.version, b.version}
    assert all(allow == (v == a.version) for v, allow in seen)
