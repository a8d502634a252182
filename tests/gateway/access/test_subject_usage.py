"""Who used my data: audit chains read by subject hash, hidden-by-law uses left out
(the real policy, the real Rego engine), paging and periods."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from gateway.access.subject_usage import Disclosure, decode_cursor, uses_of
from gateway.audit import AuditLog
from gateway.errors import GovgwError
from gateway.grants import GrantStore
from gateway.policy.bundle import load_bundle
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
ME, SOMEONE = "a" * 64, "b" * 64
OWN = frozenset(
    {"subject.usage", "subject.correct", "subject.withdraw", "subject.read", "subject.records"}
)


@pytest.fixture(scope="module")
def disclosure_engine() -> RegorusEngine:
    return RegorusEngine(load_bundle(POLICIES))


@pytest.fixture
def disclosure(disclosure_engine: RegorusEngine, tmp_path: Path) -> Disclosure:
    return Disclosure(Decider(disclosure_engine, GrantStore(tmp_path / "grants.json")))


def record(caller: str, department: str, purpose: str, *, subject: str = ME, action="lookup",
           kind="agency", rid: str = "") -> dict:  # fmt: skip
    return {
        "request_id": rid or f"req-{caller}-{purpose}",
        "caller": caller,
        "caller_kind": kind,
        "department": department,
        "action": action,
        "dataset": "population.basic",
        "purpose": purpose,
        "outcome": "OK",
        "subject": subject,
    }


def write(path: Path, records: list[dict], at: datetime) -> None:
    clock = iter(at + timedelta(minutes=i) for i in range(len(records)))
    with AuditLog(path, clock=lambda: next(clock)) as log:
        log.append_many(records)


@pytest.mark.requirement("R8")
def test_uses_by_subject_hash_minus_own_calls_and_hidden_ones(
    disclosure: Disclosure, tmp_path: Path
) -> None:
    # Two worker processes, two chains.
    write(
        tmp_path / "audit.log",
        [
            record("counter-1", "汶川县政务服务中心", "户籍业务办理", kind="counter"),
            record("police", "汶川县公安局", "刑事案件侦查"),
            record("police", "汶川县公安局", "户籍迁移办理"),
            record("portal", "公众", "数据主体权利", kind="public", action="subject.usage"),
            record("civil", "汶川县民政局", "资格审核", subject=SOMEONE),
            record("system:sweep", "", "数据申请授权", kind="system", action="access.sweep"),
        ],
        NOW,
    )
    write(
        tmp_path / "audit-w1.log",
        [
            record("security", "阿坝州国家安全局", "国家安全调查"),
            record("civil", "汶川县民政局", "资格审核"),
            record("police", "汶川县公安局", "刑事案件侦查", rid="req-again"),
        ],
        NOW + timedelta(seconds=30),
    )
    files = [tmp_path / "audit.log", tmp_path / "audit-w1.log"]
    page, token = uses_of(
        files, ME, since=NOW - timedelta(days=1), until=NOW + timedelta(days=1),
        exclude_actions=OWN, disclosure=disclosure, now=NOW,
    )  # fmt: skip
    assert token == ""
    assert [(u.caller, u.purpose) for u in page] == [
        ("civil", "资格审核"),  # newest first
        ("system:sweep", "数据申请授权"),
        ("police", "户籍迁移办理"),
        ("counter-1", "户籍业务办理"),
    ]
    # Evaluated once per distinct kind of use, not per record.
    assert len(disclosure._cache) == 5
    # The period filter.
    page, _ = uses_of(
        files, ME, since=NOW + timedelta(seconds=10), until=NOW + timedelta(days=1),
        exclude_actions=OWN, disclosure=disclosure, now=NOW,
    )  # fmt: skip
    assert [u.caller for u in page] == ["civil"]


def test_pages_do_not_shift_when_new_uses_arrive(disclosure: Disclosure, tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write(path, [record("civil", "汶川县民政局", f"审核{i}") for i in range(5)], NOW)
    args = dict(
        since=NOW - timedelta(days=1), until=NOW + timedelta(days=1), exclude_actions=OWN,
        disclosure=disclosure, now=NOW, page_size=2,
    )  # fmt: skip
    first, token = uses_of([path], ME, **args)
    assert [u.purpose for u in first] == ["审核4", "审核3"]
    write(path, [record("civil", "汶川县民政局", "新的使用")], NOW + timedelta(minutes=10))
    second, token = uses_of([path], ME, cursor=decode_cursor(token), **args)
    third, token = uses_of([path], ME, cursor=decode_cursor(token), **args)
    assert [u.purpose for u in second + third] == ["审核2", "审核1", "审核0"] and token == ""


def test_a_policy_that_decides_nothing_fails_closed(tmp_path: Path) -> None:
    """Without the disclosure package the policy neither shows nor hides: nothing is listed."""
    bundle = load_bundle(POLICIES)
    modules = {k: v for k, v in bundle.modules.items() if not k.endswith("subject_access.rego")}
    engine = RegorusEngine(replace(bundle, modules=modules, version="pv-test"))
    disclosure = Disclosure(Decider(engine, GrantStore(tmp_path / "grants.json")))
    with pytest.raises(GovgwError) as e:
        disclosure.hidden(record("civil", "汶川县民政局", "资格审核"), NOW)
    assert (e.value.code, e.value.reason) == (grpc.StatusCode.UNAVAILABLE, "POLICY_ERROR")


def test_bad_page_tokens(disclosure: Disclosure) -> None:
    for bad in ("x", "WzFd", "bm90IGpzb24", "WyJ5ZXN0ZXJkYXkiLCJyIl0"):
        with pytest.raises(GovgwError) as e:
            decode_cursor(bad)
        assert e.value.reason == "PAGE_TOKEN_INVALID"
