"""Opening suspensions (撤回 on a security risk, R9): the store's transitions, and
the decider re-deciding the open route from data.suspensions on the next call."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import grpc
import pytest

from gateway.access.opening import OpeningSuspensionStore
from gateway.callers import Caller
from gateway.catalog import load
from gateway.errors import GovgwError
from gateway.grants import GrantStore
from gateway.policy.bundle import load_bundle
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
DS = "legal_entity.basic"
AMR = Caller(
    "agency-amr",
    "agency",
    "汶川县市场监督管理局",
    "513221",
    provider_ids=("county.market-regulation",),
)
POLICE = Caller(
    "agency-police", "agency", "汶川县公安局", "513221", provider_ids=("county.public-security",)
)
ROOT = Caller("root", "admin", "州大数据局", "513200")
PUBLIC = {"id": "portal", "kind": "public", "department": "公众", "region": "513200"}
AGENCY = {"id": "a", "kind": "agency", "department": "汶川县民政局", "region": "513221"}


@cache
def engine() -> RegorusEngine:
    return RegorusEngine(load_bundle(POLICIES))


@pytest.fixture
def store(tmp_path: Path) -> OpeningSuspensionStore:
    return OpeningSuspensionStore(tmp_path / "opening_suspensions.json", load())


def _code(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(GovgwError) as e:
        fn()
    return e.value.code, e.value.reason


@pytest.mark.requirement("R9")
def test_transitions_and_the_policy_view(store: OpeningSuspensionStore) -> None:
    assert store.policy_view()[1] == {}
    s = store.suspend(AMR, DS, "发现安全风险", NOW)
    v1, view = store.policy_view()
    assert view == {DS: {"id": s["id"], "status": "suspended"}}
    w = store.withdraw(AMR, s["id"], "确认风险", NOW)
    assert w["status"] == "withdrawn" and store.policy_view()[1][DS]["status"] == "withdrawn"
    r = store.reopen(ROOT, s["id"], "已重新脱敏", NOW, reprocessed=True)
    assert (r["status"], r["reprocessed"]) == ("reopened", True)
    v2, view = store.policy_view()
    assert view == {} and v2 > v1
    assert [(e["event"], e["by"]) for e in r["history"]] == [
        ("suspended", "agency-amr"),
        ("withdrawn", "agency-amr"),
        ("reopened", "root"),
    ]
    # Reopened is final: a new risk is a new suspension.
    assert _code(lambda: store.withdraw(AMR, s["id"], "x", NOW)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SUSPENSION_STATUS",
    )
    assert store.suspend(AMR, DS, "新的风险", NOW)["id"] != s["id"]


def test_who_sees_and_acts(store: OpeningSuspensionStore) -> None:
    s = store.suspend(ROOT, DS, "发现安全风险", NOW)
    assert [x["id"] for x in store.visible(AMR)] == [s["id"]]
    assert store.visible(POLICE) == [] and store.visible(ROOT, dataset="population.basic") == []
    assert store.visible(ROOT, status="withdrawn") == []
    assert _code(lambda: store.reopen(POLICE, s["id"], "x", NOW, reprocessed=False)) == (
        grpc.StatusCode.NOT_FOUND,
        "SUSPENSION_NOT_FOUND",
    )
    assert _code(lambda: store.suspend(POLICE, DS, "x", NOW)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PROVIDER_REQUIRED",
    )


@pytest.mark.requirement("R9")
def test_the_next_decision_sees_a_suspension_made_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "opening_suspensions.json"
    d = Decider(
        engine(),
        GrantStore(tmp_path / "grants.json"),
        suspensions=OpeningSuspensionStore(path, load()),
    )

    def public() -> str:
        p = d.decide(caller=PUBLIC, action="lookup", dataset=DS, purpose="核实", now=NOW)
        return "OK" if p.allow else p.reason

    def agency() -> bool:
        p = d.decide(caller=AGENCY, action="lookup", dataset=DS, purpose="核实", now=NOW)
        return p.allow

    assert public() == "OK" and public() == "OK"  # the second one a cache hit
    hits = d.hits
    other = OpeningSuspensionStore(path, load())  # another worker's store
    s = other.suspend(AMR, DS, "发现安全风险", NOW)
    assert public() == "OPENING_SUSPENDED" and agency()
    other.withdraw(AMR, s["id"], "确认", NOW)
    assert public() == "OPENING_WITHDRAWN"
    other.reopen(AMR, s["id"], "已处理", NOW, reprocessed=True)
    # Every change moved the version in the cache key: no stale plan was reused.
    assert public() == "OK" and d.hits == hits


def test_a_decider_without_the_store_is_unchanged(tmp_path: Path) -> None:
    d = Decider(engine(), GrantStore(tmp_path / "grants.json"))
    p = d.decide(caller=PUBLIC, action="lookup", dataset=DS, purpose="核实", now=NOW)
    assert p.allow
