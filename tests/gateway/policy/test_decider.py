"""Decider: plans cached per request shape, grants and policy version; errors deny."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.grants import GrantStore
from gateway.policy.bundle import PolicyBundle, bundle_version, load_bundle
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
AID = "social_assistance.recipient"
AGENCY = {
    "id": "county-civil-affairs",
    "kind": "agency",
    "department": "县民政局",
    "region": "513221",
}


@cache
def engine() -> RegorusEngine:
    return RegorusEngine(load_bundle(POLICIES))


def decider(tmp_path: Path, **kw: Any) -> Decider:
    return Decider(engine(), GrantStore(tmp_path / "grants.json", refresh_interval=0), **kw)


def ask(d: Decider, dataset: str = "population.basic", *, now: datetime = NOW, **kw: Any) -> Any:
    args = {"caller": AGENCY, "action": "lookup", "dataset": dataset, "purpose": "低保审核"}
    return d.decide(**{**args, **kw}, now=now)


def test_repeat_is_a_hit_returning_the_same_plan(tmp_path: Path) -> None:
    d = decider(tmp_path)
    first = ask(d)
    assert first.allow and first.policy_version == engine().version
    assert ask(d) is first
    assert (d.hits, d.misses) == (1, 1)


def test_key_covers_every_input(tmp_path: Path) -> None:
    d = decider(tmp_path)
    ask(d)
    ask(d, caller={**AGENCY, "id": "other"})
    ask(d, caller={**AGENCY, "kind": "counter"})
    ask(d, caller={**AGENCY, "department": "x"})
    ask(d, caller={**AGENCY, "region": "513200"})
    ask(d, action="verify.attributes")
    ask(d, dataset="legal_entity.basic")
    ask(d, purpose="other")
    assert (d.hits, d.misses) == (0, 8)
    counter = ask(d, caller={**AGENCY, "kind": "counter"})
    assert counter.region_prefix == "513221"
    assert d.hits == 1


def test_grant_change_misses_and_revocation_denies(tmp_path: Path) -> None:
    d = decider(tmp_path)
    assert ask(d, AID).reason == "GRANT_REQUIRED"
    g = d.grants.add(AGENCY["id"], AID, ["name"], "低保审核", NOW + timedelta(days=30))
    plan = ask(d, AID)
    assert plan.allow and plan.grant_id == g["id"] and set(plan.fields) == {"name"}
    assert ask(d, AID) is plan
    d.grants.revoke(g["id"], "misuse")
    assert ask(d, AID).reason == "GRANT_REQUIRED"
    assert d.misses == 3


def test_cached_plan_not_used_past_its_expiry(tmp_path: Path) -> None:
    d = decider(tmp_path)
    expiry = NOW + timedelta(hours=1)
    d.grants.add(AGENCY["id"], AID, ["name"], "低保审核", expiry)
    plan = ask(d, AID)
    assert plan.expires_at == "2026-11-22T00:30:00Z"
    assert ask(d, AID, now=expiry - timedelta(seconds=1)) is plan
    late = ask(d, AID, now=expiry)
    assert (late.allow, late.reason) == (False, "GRANT_EXPIRED")
    assert (d.hits, d.misses) == (1, 2)


def test_naive_now_is_utc(tmp_path: Path) -> None:
    d = decider(tmp_path)
    d.grants.add(AGENCY["id"], AID, ["name"], "低保审核", NOW + timedelta(hours=1))
    assert ask(d, AID, now=NOW.replace(tzinfo=None)).allow
    assert not ask(d, AID, now=(NOW + timedelta(hours=2)).replace(tzinfo=None)).allow


def test_invalidate_and_bound(tmp_path: Path) -> None:
    d = decider(tmp_path, cache_size=2)
    ask(d, "population.basic")
    ask(d, "legal_entity.basic")
    ask(d, "credit.record")  # evicts population.basic, the least recently used
    ask(d, "credit.record")
    ask(d, "population.basic")
    assert (d.hits, d.misses) == (1, 4)
    d.invalidate()
    ask(d, "population.basic")
    assert d.misses == 5


def test_activating_a_new_policy_version_misses(tmp_path: Path) -> None:
    d = decider(tmp_path)
    assert ask(d).allow
    bundle = load_bundle(POLICIES)
    modules = dict(bundle.modules)
    modules["share.rego"] = modules["share.rego"].replace(
        'ds.share_class == "unconditional"', 'ds.share_class == "never"'
    )
    d.engine = RegorusEngine(
        PolicyBundle(modules, bundle.data, bundle_version(modules, bundle.data))
    )
    plan = ask(d)
    assert not plan.allow and plan.policy_version == d.engine.version != engine().version
    assert (d.hits, d.misses) == (0, 2)


def small_engine(rule: str) -> RegorusEngine:
    modules = {"d.rego": "package govgw.decision\nimport rego.v1\n" + rule + "\n"}
    return RegorusEngine(PolicyBundle(modules, {}, bundle_version(modules, {})))


def test_errors_and_bad_results_deny_with_policy_error_and_are_not_cached(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    for rule, message in [
        ('plan := to_number("x")', "the policy could not be evaluated"),
        ("plan := 1 if false", "the policy gave no decision"),
        ('plan := {"allow": true, "fields": {"x": 1}}', "the policy returned a malformed plan"),
    ]:
        d = Decider(small_engine(rule), store)
        for _ in range(2):
            plan = ask(d)
            assert (plan.allow, plan.reason, plan.message) == (False, "POLICY_ERROR", message)
        assert d.misses == 2


def test_non_object_result_denies(tmp_path: Path) -> None:
    d = Decider(small_engine("plan := 42"), GrantStore(tmp_path / "grants.json"))
    assert ask(d).reason == "POLICY_DENIED"


def test_concurrent_decisions(tmp_path: Path) -> None:
    d = decider(tmp_path, cache_size=3)
    datasets = ["population.basic", "legal_entity.basic", "credit.record", "licence.business"]
    expected = {ds: ask(d, ds).to_json() for ds in datasets}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(50):
                ds = datasets[i % 4]
                assert ask(d, ds).to_json() == expected[ds]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert d.hits + d.misses == 4 + 8 * 50


# ----- property: caching never changes a decision -----------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("ask"), st.sampled_from([AID, "population.basic"]), st.integers(0, 3)),
        st.tuples(st.just("grant"), st.integers(1, 3), st.integers(0, 3)),
        st.tuples(st.just("revoke"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("tick"), st.integers(1, 90), st.integers(0, 3)),
    ),
    max_size=20,
)


@settings(max_examples=40, deadline=None)
@given(steps=steps)
def test_cached_decisions_equal_fresh_ones(tmp_path_factory: Any, steps: list[Any]) -> None:
    store = GrantStore(tmp_path_factory.mktemp("g") / "grants.json", refresh_interval=0)
    cached = Decider(engine(), store)
    now = NOW
    granted: list[str] = []
    for op, a, b in steps:
        if op == "ask":
            purpose = ["低保审核", "other"][b % 2]
            fresh = Decider(engine(), store)  # empty cache: the reference
            got = ask(cached, a, now=now, purpose=purpose)
            want = ask(fresh, a, now=now, purpose=purpose)
            assert got.to_json() == want.to_json()
        elif op == "grant":
            g = store.add(AGENCY["id"], AID, ["name", "monthly_amount"][: 1 + b % 2], "低保审核",
                          now + timedelta(minutes=30 * a))  # fmt: skip
            granted.append(g["id"])
        elif op == "revoke" and granted:
            store.revoke(granted[a % len(granted)], "test")
        elif op == "tick":
            now += timedelta(minutes=a)


def test_invalidate_sees_a_grant_written_by_another_store_at_once(tmp_path: Path) -> None:
    path = tmp_path / "grants.json"
    d = Decider(engine(), GrantStore(path, refresh_interval=3600))
    assert ask(d, AID).reason == "GRANT_REQUIRED"
    GrantStore(path).add(
        AGENCY["id"], AID, ["name"], "低保审核", NOW + timedelta(days=1)
    )  # the CLI
    assert ask(d, AID).reason == "GRANT_REQUIRED"  # the store has not looked yet
    d.invalidate()
    assert ask(d, AID).allow
