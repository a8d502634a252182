"""The emergency store (R11) on a real catalog, grant store, audit log and Rego policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.access.emergency import (
    ACTIVE,
    ENDED,
    EXPIRED_REASON,
    EXPIRY_ACTOR,
    MAX_DURATION,
    REVOKE_REASON,
    SEALING_COLUMNS,
    EmergencyInput,
    EmergencyStore,
    digest,
    sealing_list,
    to_csv,
)
from gateway.audit import AuditLog
from gateway.callers import Caller
from gateway.catalog import DEFAULT_CATALOG, Catalog, load, parse
from gateway.errors import GovgwError
from gateway.grants import GrantStore
from gateway.policy.bundle import load_bundle
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
DS = "social_assistance.recipient"
ROOT = Caller("root", "admin", "州大数据局", "513221")
CALLERS = {
    c.id: c
    for c in (
        Caller("agency-rescue", "agency", "汶川县应急管理局", "513221"),
        Caller("agency-health", "agency", "汶川县卫生健康局", "513221"),
        Caller("counter-wenchuan", "counter", "汶川县政务服务中心", "513221"),
        ROOT,
    )
}
POLICIES = Path(__file__).resolve().parents[3] / "policies"


def store_at(tmp_path: Path, catalog: Catalog | None = None) -> EmergencyStore:
    grants = GrantStore(tmp_path / "grants.json", refresh_interval=0)
    return EmergencyStore(
        tmp_path / "emergencies.json", grants, catalog or load(), CALLERS.get, refresh_interval=0
    )


@pytest.fixture
def store(tmp_path: Path) -> EmergencyStore:
    return store_at(tmp_path)


def emergency(**kw: Any) -> EmergencyInput:
    base: dict[str, Any] = dict(
        title="汶川县地震应急响应",
        legal_basis="《突发事件应对法》第四十五条",
        scope=((DS, ("name", "assistance_type")),),
        agencies=("agency-rescue", "agency-health"),
        purpose="地震受灾群众救助核查",
        ends_at=NOW + timedelta(days=7),
    )
    return EmergencyInput(**{**base, **kw})


def refused(fn: Any) -> GovgwError:
    with pytest.raises(GovgwError) as e:
        fn()
    return e.value


@pytest.mark.requirement("R11")
def test_declaration_creates_one_grant_per_agency_and_dataset(store: EmergencyStore) -> None:
    doc = store.declare(ROOT, emergency(), NOW)
    assert doc["status"] == ACTIVE and doc["declared_by"] == "root"
    assert doc["scope"] == {DS: ["assistance_type", "name"]}
    assert doc["ends_at"] == "2026-06-08T02:00:00Z"
    grants = [store.grants.get(g) for g in doc["grant_ids"]]
    assert sorted(g["caller"] for g in grants) == ["agency-health", "agency-rescue"]
    for g in grants:
        assert g["emergency_id"] == doc["id"] and g["dataset"] == DS
        assert (
            g["expires_at"] == doc["ends_at"] and g["purpose"] == "disaster_relief"
        )  # the stored form: its code
        assert g["fields"] == ["assistance_type", "name"] and g["status"] == "active"
    version, view = store.policy_view()
    assert version == store.version and [e["id"] for e in view] == [doc["id"]]
    assert set(view[0]) == {"id", "status", "agencies", "scope", "ends_at"}


@pytest.mark.requirement("R11")
def test_time_box_is_after_now_and_at_most_thirty_days(store: EmergencyStore) -> None:
    assert store.validate(emergency(ends_at=NOW + MAX_DURATION), NOW)["ends_at"]
    for ends_at, reason in (
        (NOW, "ENDS_AT_NOT_FUTURE"),
        (NOW - timedelta(days=1), "ENDS_AT_NOT_FUTURE"),
        (NOW + MAX_DURATION + timedelta(seconds=1), "ENDS_AT_TOO_FAR"),
        (None, "ENDS_AT_MISSING"),
    ):
        e = refused(lambda t=ends_at: store.declare(ROOT, emergency(ends_at=t), NOW))
        assert e.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [(v.field, v.reason) for v in e.violations] == [("ends_at", reason)]
    assert store.list() == [] and store.grants.list() == []  # nothing written


def test_scope_and_agencies_are_checked_field_by_field(store: EmergencyStore) -> None:
    e = refused(
        lambda: store.validate(
            emergency(
                scope=(
                    (DS, ("name", "nope", "name")),
                    ("no.such", ("x",)),
                    (DS, ("name",)),
                    ("population.basic", ("name",)),
                    ("", ()),
                    ("licence.business", ()),
                ),
                agencies=("agency-rescue", "ghost", "counter-wenchuan", "agency-rescue"),
            ),
            NOW,
        )
    )
    assert [(v.field, v.reason) for v in e.violations] == [
        ("scope[0].fields[1]", "UNKNOWN_FIELD"),
        ("scope[0].fields[2]", "DUPLICATE_FIELD"),
        ("scope[1].dataset", "UNKNOWN_DATASET"),
        ("scope[2].dataset", "DUPLICATE_DATASET"),
        ("scope[3].dataset", "DATASET_NOT_CONDITIONAL"),
        ("scope[4].dataset", "DATASET_MISSING"),
        ("scope[5].dataset", "DATASET_NOT_CONDITIONAL"),
        ("agencies[1]", "UNKNOWN_CALLER"),
        ("agencies[2]", "CALLER_NOT_AGENCY"),
        ("agencies[3]", "DUPLICATE_AGENCY"),
    ]


@pytest.mark.requirement("R2", "R11")
def test_secret_and_redacted_fields_stay_out(tmp_path: Path) -> None:
    doc = json.loads(DEFAULT_CATALOG.read_text(encoding="utf-8"))
    fields = doc["datasets"][DS]["fields"]
    next(f for f in fields if f["name"] == "monthly_amount")["sensitivity"] = "secret"
    next(f for f in fields if f["name"] == "end_date")["share"] = {"operator": "redact"}
    store = store_at(tmp_path, parse(doc))
    e = refused(
        lambda: store.validate(
            emergency(scope=((DS, ("name", "monthly_amount", "end_date", "")),)), NOW
        )
    )
    assert [(v.field, v.reason) for v in e.violations] == [
        ("scope[0].fields[1]", "FIELD_SECRET"),
        ("scope[0].fields[2]", "FIELD_NOT_RELEASABLE"),
        ("scope[0].fields[3]", "UNKNOWN_FIELD"),
    ]


@pytest.mark.requirement("R11")
def test_end_revokes_its_grants_once(store: EmergencyStore) -> None:
    doc = store.declare(ROOT, emergency(), NOW)
    other = store.declare(ROOT, emergency(purpose="其他应急用途"), NOW)
    store.grants.set_status(doc["grant_ids"][0], "suspended", "超范围使用", NOW)
    ended, revoked = store.end(ROOT, doc["id"], "应急响应终止", NOW + timedelta(days=1))
    assert ended["status"] == ENDED and ended["ended_by"] == "root"
    assert ended["end_reason"] == "应急响应终止" and ended["ended_at"] == "2026-06-02T02:00:00Z"
    assert sorted(revoked) == sorted(doc["grant_ids"])
    for g in doc["grant_ids"]:
        assert store.grants.get(g)["revoke_reason"] == REVOKE_REASON
    # A grant suspended meanwhile is revoked too (final: it cannot be reinstated).
    assert store.grants.get(doc["grant_ids"][0])["status"] == "revoked"
    # The other emergency's grants are untouched.
    assert {store.grants.get(g)["status"] for g in other["grant_ids"]} == {"active"}
    e = refused(lambda: store.end(ROOT, doc["id"], "再次", NOW))
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "EMERGENCY_ENDED")
    e = refused(lambda: store.end(ROOT, "em-unknown", "结束", NOW))
    assert (e.code, e.reason) == (grpc.StatusCode.NOT_FOUND, "EMERGENCY_NOT_FOUND")
    assert [e["id"] for e in store.policy_view()[1]] == [other["id"]]


@pytest.mark.requirement("R11")
def test_expiry_ends_at_the_end_time_not_before(store: EmergencyStore) -> None:
    doc = store.declare(ROOT, emergency(ends_at=NOW + timedelta(hours=2)), NOW)
    later = store.declare(ROOT, emergency(purpose="后续救助"), NOW)
    assert store.expire_due(NOW + timedelta(hours=2) - timedelta(seconds=1)) == []
    ended = store.expire_due(NOW + timedelta(hours=2))
    assert [(d["id"], sorted(r)) for d, r in ended] == [(doc["id"], sorted(doc["grant_ids"]))]
    got = store.get(doc["id"])
    assert (got["status"], got["ended_by"], got["end_reason"]) == (
        ENDED,
        EXPIRY_ACTOR,
        EXPIRED_REASON,
    )
    assert [h["event"] for h in got["history"]] == ["declared", "expired"]
    assert store.get(later["id"])["status"] == ACTIVE
    assert store.expire_due(NOW + timedelta(hours=3)) == []  # nothing twice


def test_expiry_limited_to_named_emergencies(store: EmergencyStore) -> None:
    a = store.declare(ROOT, emergency(ends_at=NOW + timedelta(hours=1)), NOW)
    b = store.declare(ROOT, emergency(ends_at=NOW + timedelta(hours=1), purpose="乙"), NOW)
    ended = store.expire_due(NOW + timedelta(hours=2), [b["id"]])
    assert [d["id"] for d, _ in ended] == [b["id"]]
    assert store.get(a["id"])["status"] == ACTIVE


@pytest.mark.requirement("R11")
def test_leftover_grants_of_an_ended_emergency_are_revoked(store: EmergencyStore) -> None:
    doc = store.declare(ROOT, emergency(), NOW)
    store.end(ROOT, doc["id"], "结束", NOW)
    # As if a process stopped between ending the emergency and revoking a grant.
    stray = store.grants.add(
        "agency-rescue", DS, ["name"], "地震受灾群众救助核查", NOW + timedelta(days=1),
        emergency_id=doc["id"], now=NOW,
    )  # fmt: skip
    ended = store.expire_due(NOW)
    assert [(d["id"], r) for d, r in ended] == [(doc["id"], [stray["id"]])]
    assert store.grants.get(stray["id"])["revoke_reason"] == REVOKE_REASON


@pytest.mark.requirement("R11")
def test_seal_after_the_end_once(store: EmergencyStore) -> None:
    doc = store.declare(ROOT, emergency(), NOW)
    e = refused(lambda: store.seal(ROOT, doc["id"], [], NOW))
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "EMERGENCY_ACTIVE")
    store.end(ROOT, doc["id"], "结束", NOW)
    entries = [{"request_id": "r1", "subject_hashes": ["h1"]}]
    sealed = store.seal(ROOT, doc["id"], entries, NOW + timedelta(days=1))
    assert (sealed["sealed_by"], sealed["sealed_calls"]) == ("root", 1)
    assert sealed["sealing_digest"] == digest(entries) != digest([])
    e = refused(lambda: store.seal(ROOT, doc["id"], entries, NOW))
    assert e.reason == "EMERGENCY_SEALED"


def test_visibility_admins_and_designated_agencies(store: EmergencyStore) -> None:
    doc = store.declare(ROOT, emergency(agencies=("agency-rescue",)), NOW)
    assert store.visible(CALLERS["agency-rescue"], doc["id"])["id"] == doc["id"]
    assert [d["id"] for d in store.listed(ROOT)] == [doc["id"]]
    assert store.listed(CALLERS["agency-health"]) == []
    assert store.listed(ROOT, ENDED) == []
    for caller in (CALLERS["agency-health"], CALLERS["counter-wenchuan"]):
        assert refused(lambda c=caller: store.visible(c, doc["id"])).reason == (
            "EMERGENCY_NOT_FOUND"
        )


def test_another_process_sees_a_declaration(tmp_path: Path) -> None:
    first, second = store_at(tmp_path), store_at(tmp_path)
    assert second.policy_view()[1] == []
    doc = first.declare(ROOT, emergency(), NOW)
    assert [e["id"] for e in second.policy_view()[1]] == [doc["id"]]
    first.end(ROOT, doc["id"], "结束", NOW)
    assert second.policy_view()[1] == [] and second.get(doc["id"])["status"] == ENDED


def test_an_end_elsewhere_is_seen_on_the_next_look(tmp_path: Path) -> None:
    first = store_at(tmp_path)
    grants = GrantStore(tmp_path / "grants.json", refresh_interval=3600)
    second = EmergencyStore(
        tmp_path / "emergencies.json", grants, load(), CALLERS.get, refresh_interval=3600
    )
    doc = first.declare(ROOT, emergency(), NOW)
    # No emergency active here yet: a declaration may be seen late (it only widens).
    assert second.version == 0
    second.reload()
    assert second.version == first.version
    first.end(ROOT, doc["id"], "结束", NOW)
    # One active here: the end is seen on the very next look, whatever the interval.
    assert second.version == first.version and second.policy_view()[1] == []


@pytest.mark.requirement("R11")
def test_sealing_list_groups_records_per_call(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"

    def event(rid: str, subject: str = "", outcome: str = "OK", **kw: Any) -> dict[str, Any]:
        return {
            "request_id": rid,
            "caller": "agency-rescue",
            "department": "汶川县应急管理局",
            "action": "lookup",
            "dataset": DS,
            "purpose": "核查",
            "outcome": outcome,
            "subject": subject,
            **kw,
        }

    with AuditLog(path) as log:
        log.append_many([event("r1", "h1", emergencies=["em-a"]),
                         event("r1", "h2", emergencies=["em-a"])])  # fmt: skip
        log.append(event("r2", "h1", "PERMISSION_DENIED", emergencies=["em-a"]))
        log.append(event("r3", "h3", emergencies=["em-b"]))  # another emergency
        log.append(event("r4", "h3"))  # not under an emergency
    entries = sealing_list([path], "em-a")
    assert [(e["request_id"], e["outcome"], e["subject_records"], e["subject_hashes"])
            for e in entries] == [
        ("r1", "OK", 2, ["h1", "h2"]), ("r2", "PERMISSION_DENIED", 1, ["h1"]),
    ]  # fmt: skip
    assert all(e["time"] and e["caller"] == "agency-rescue" for e in entries)
    assert sealing_list([path], "em-none") == []
    lines = to_csv(entries).splitlines()
    assert lines[0] == ",".join(SEALING_COLUMNS)
    assert lines[1].endswith(",OK,2,h1;h2")


@cache
def engine() -> RegorusEngine:
    return RegorusEngine(load_bundle(POLICIES))


@pytest.mark.requirement("R11")
def test_decider_widens_under_the_emergency_and_stops_at_its_end(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    d = Decider(engine(), store.grants, emergencies=store)
    rescue = CALLERS["agency-rescue"].policy_input()

    def ask(now: datetime = NOW + timedelta(hours=1)) -> Any:
        return d.decide(
            caller=rescue, action="lookup", dataset=DS, purpose="disaster_relief", now=now
        )

    assert ask().reason == "GRANT_REQUIRED"
    doc = store.declare(ROOT, emergency(ends_at=NOW + timedelta(hours=2)), NOW)
    plan = ask()
    assert plan.allow and set(plan.fields) == {"name", "assistance_type"}
    assert plan.obligations.emergency_id == doc["id"]
    assert plan.expires_at == doc["ends_at"]
    assert ask() is plan  # cached
    # Past the end the cached plan is not served, whatever the store says.
    assert ask(NOW + timedelta(hours=2)).reason == "GRANT_EXPIRED"
    # Ended explicitly: refused at once, by version, no invalidation needed.
    doc2 = store.declare(ROOT, emergency(purpose="二次核查"), NOW)
    # The decider sees purposes in their stored form (gateway.purposes).
    plan2 = d.decide(caller=rescue, action="lookup", dataset=DS, purpose="other: 二次核查", now=NOW)
    assert plan2.allow and plan2.obligations.emergency_id == doc2["id"]
    store.end(ROOT, doc2["id"], "结束", NOW)
    again = d.decide(caller=rescue, action="lookup", dataset=DS, purpose="other: 二次核查", now=NOW)
    assert again.reason == "GRANT_REQUIRED"
