"""Impact preview: replaying recorded decision inputs against a candidate policy."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.catalog import Treatment
from gateway.plan import Plan
from gateway.policy.bundle import bundle_from_files, load_bundle, read_policy_files
from gateway.policy.check import run_child
from gateway.policy.engine import RegorusEngine
from gateway.policy.impact import parse_since, plan_changes, registry_regions, replay

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PHONE_MASK = '"share": {"operator": "mask", "params": {"keep_first": 3, "keep_last": 4}}'


@cache
def current() -> RegorusEngine:
    return RegorusEngine(load_bundle(POLICIES))


@cache
def candidate() -> RegorusEngine:
    """Agencies get the phone raw; the public loses legal_entity.basic."""
    files = dict(read_policy_files(POLICIES))
    catalog = files["data/catalog.json"].decode()
    assert PHONE_MASK in catalog
    catalog = catalog.replace(PHONE_MASK, '"share": {"operator": "keep"}', 1)
    doc = json.loads(catalog)
    doc["datasets"]["legal_entity.basic"]["open_class"] = "none"
    doc["datasets"]["legal_entity.basic"]["class_reason"] = "test"
    files["data/catalog.json"] = json.dumps(doc, ensure_ascii=False).encode()
    return RegorusEngine(bundle_from_files(files))


def record(n: int, caller: str, kind: str, action: str, dataset: str, **kw: Any) -> dict:
    return {
        "request_id": f"req_{n}",
        "ts": (NOW - timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "caller": caller,
        "caller_kind": kind,
        "department": "县民政局",
        "caller_region": "513221",
        "action": action,
        "dataset": dataset,
        "purpose": "低保审核",
        "decision": "allow",
        "plan_hash": "h",
        "subject": "s",
        "input": {"fields": ["name", "phone"], "predicates": [], "violations": []},
        **kw,
    }


def test_plan_changes_classify_every_field_change() -> None:
    keep, mask = Treatment("keep"), Treatment("mask", {"keep_first": 3})
    before = Plan(True, fields={"a": keep, "b": mask, "c": keep, "d": mask, "e": mask})
    after = Plan(
        True,
        fields={
            "a": mask,
            "b": keep,
            "d": Treatment("mask", {"keep_first": 1}),
            "e": mask,
            "f": keep,
        },
        predicates=frozenset({"p"}),
        region_prefix="5132",
    )
    assert plan_changes(before, after) == [
        ("field_masked", "a"),
        ("field_unmasked", "b"),
        ("field_withheld", "c"),
        ("treatment_changed", "d"),
        ("field_exposed", "f"),
        ("predicate_added", "p"),
        ("constraints_changed", ""),
    ]
    deny = Plan.deny("X", "m")
    assert plan_changes(before, deny) == [("allow_to_deny", "")]
    assert plan_changes(deny, after) == [("deny_to_allow", "")]
    assert plan_changes(deny, Plan.deny("Y", "m")) == [("deny_reason_changed", "")]
    assert plan_changes(deny, Plan.deny("X", "other message")) == []


@given(st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["keep", "mask", "redact"])))
def test_a_plan_never_changes_against_itself(fields: dict[str, str]) -> None:
    plan = Plan(True, fields={k: Treatment(v) for k, v in fields.items()})
    assert plan_changes(plan, plan) == []


def test_replay_groups_changes_by_dataset_and_caller_with_examples() -> None:
    records = [
        # three subjects of one batch request: replayed once
        *(record(1, "agency-civil", "agency", "lookup", "population.basic") for _ in range(3)),
        record(2, "agency-civil", "agency", "lookup", "population.basic"),
        record(3, "public-portal", "public", "lookup", "legal_entity.basic"),
        record(4, "public-portal", "public", "verify.attributes", "legal_entity.basic"),
        record(5, "agency-civil", "agency", "verify.identity", "population.basic"),
        record(6, "", "", "lookup", "population.basic", plan_hash=""),  # unauthenticated
        record(7, "counter-x", "counter", "lookup", "population.basic", decision="deny"),
        record(90 * 24, "agency-civil", "agency", "lookup", "population.basic"),  # too old
    ]
    report = replay(
        records, current(), candidate(), since=NOW - timedelta(hours=24), examples=1
    ).to_json()
    assert report["records_read"] == len(records)
    assert report["requests_replayed"] == 6 and report["skipped"] == {"undecided": 1}
    assert report["totals"] == {"allow_to_deny": 2, "field_unmasked": 3}
    groups = {(g["change"], g["dataset"], g["caller"]): g for g in report["groups"]}
    unmasked = groups[("field_unmasked", "population.basic", "agency-civil")]
    assert unmasked["count"] == 2 and unmasked["names"] == {"phone": 2}
    [example] = unmasked["examples"]
    assert example["request_id"] == "req_1" and example["requested_fields"] == ["name", "phone"]
    assert (example["before"]["fields"]["phone"], example["after"]["fields"]["phone"]) == (
        "mask",
        "keep",
    )
    denied = groups[("allow_to_deny", "legal_entity.basic", "public-portal")]
    assert denied["count"] == 2 and denied["examples"][0]["after"]["reason"]
    # the counter's recorded deny is now an allow under the served policy
    assert report["recorded_differs"] == 1
    assert "subject" not in json.dumps(report)


def test_records_without_a_region_take_the_registry_s(tmp_path: Path) -> None:
    db = tmp_path / "callers.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE callers (id TEXT, region TEXT)")
        c.execute("INSERT INTO callers VALUES ('counter-x', '513221')")
    region_of = registry_regions(db)
    assert (region_of("counter-x"), region_of("nobody")) == ("513221", "")
    old = record(1, "counter-x", "counter", "lookup", "population.basic")
    del old["caller_region"]
    report = replay([old], current(), current(), region_of=region_of).to_json()
    assert report["decisions_compared"] == 1 and report["recorded_differs"] == 0
    report = replay([old], current(), current()).to_json()  # no region: the counter is refused
    assert report["recorded_differs"] == 1


def test_parse_since() -> None:
    assert parse_since("24h", NOW) == NOW - timedelta(hours=24)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-11-20T08:00:00+08:00") == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    for bad in ("yesterday", "2026-11-20T08:00:00", "-1h"):
        with pytest.raises(ValueError):
            parse_since(bad, NOW)


def test_the_child_checks_the_candidate_first(tmp_path: Path) -> None:
    shutil.copytree(POLICIES, tmp_path / "cand")
    (tmp_path / "cand" / "regions.rego").write_text("package govgw.regions\nx := +\n")
    doc, problems = run_child(
        "gateway.policy.impact",
        [
            "--current",
            str(POLICIES),
            "--candidate",
            str(tmp_path / "cand"),
            "--audit",
            str(tmp_path / "none.log"),
        ],
        30,
    )
    assert problems == [] and doc is not None
    assert doc["problems"][0]["file"] == "regions.rego" and "report" not in doc
    doc, _ = run_child(
        "gateway.policy.impact",
        [
            "--current",
            str(POLICIES),
            "--candidate",
            str(POLICIES),
            "--audit",
            str(tmp_path / "none.log"),
        ],
        30,
    )
    assert doc is not None and doc["report"]["decisions_changed"] == 0


# ----- calls made under an emergency (R11) ---------------------------------------------------

EM_DS = "social_assistance.recipient"
EM_PURPOSE = "地震受灾群众救助核查"
DECLARED, ENDED = NOW - timedelta(hours=5), NOW - timedelta(hours=2)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def no_emergency_widening() -> RegorusEngine:
    """The candidate: an emergency grant is never in force."""
    files = dict(read_policy_files(POLICIES))
    rego = files["grants.rego"].decode()
    assert "in_force(g) if emergency_of(g)\n" in rego
    files["grants.rego"] = rego.replace("in_force(g) if emergency_of(g)\n", "").encode()
    return RegorusEngine(bundle_from_files(files))


def emergency_store() -> tuple[list[dict], list[dict]]:
    """An emergency declared 5 h and ended 2 h before NOW, as the stores keep it then."""
    em = {
        "id": "em-1",
        "title": "地震应急响应",
        "scope": {EM_DS: ["assistance_type", "name"]},
        "agencies": ["agency-rescue"],
        "purpose": EM_PURPOSE,
        "ends_at": _stamp(NOW + timedelta(days=3)),
        "declared_at": _stamp(DECLARED),
        "status": "ended",
        "ended_at": _stamp(ENDED),
        "grant_ids": ["g-em"],
    }
    grant = {
        "id": "g-em",
        "caller": "agency-rescue",
        "dataset": EM_DS,
        "fields": ["assistance_type", "name"],
        "purpose": EM_PURPOSE,
        "expires_at": em["ends_at"],
        "status": "revoked",
        "created_at": em["declared_at"],
        "emergency_id": "em-1",
        "revoked_at": em["ended_at"],
        "revoke_reason": "EMERGENCY_ENDED",
    }
    return [em], [grant]


def emergency_call(minutes_before_now: int, decision: str) -> dict:
    rec = record(minutes_before_now, "agency-rescue", "agency", "lookup", EM_DS)
    rec.update(purpose=EM_PURPOSE, decision=decision)
    if decision == "allow":
        rec["emergencies"] = ["em-1"]
    return rec


def test_calls_under_an_emergency_replay_with_it_as_it_was_then() -> None:
    emergencies, grants = emergency_store()
    records = [
        emergency_call(3 * 60, "allow"),  # under the emergency
        emergency_call(4 * 60, "allow"),  # under the emergency
        emergency_call(60, "deny"),  # after its end: the grant was revoked
        emergency_call(6 * 60, "deny"),  # before its declaration: no grant yet
    ]
    kw: dict[str, Any] = {"grants": grants, "emergencies": emergencies}
    report = replay(records, current(), no_emergency_widening(), **kw).to_json()
    # The served policy decides every call as it was decided at its time...
    assert report["recorded_differs"] == 0 and report["decisions_compared"] == 4
    # ...and the candidate refuses the two made under the emergency, only those.
    assert report["totals"] == {"allow_to_deny": 2}
    [group] = report["groups"]
    assert (group["dataset"], group["caller"], group["count"]) == (EM_DS, "agency-rescue", 2)
    ex = group["examples"][0]
    assert ex["before"]["allow"] and ex["before"]["fields"] == {
        "assistance_type": "keep",
        "name": "mask",
    }
    assert ex["after"] == {"allow": False, "reason": "GRANT_REQUIRED"}
    # The same records without the emergency store: the widening is not previewed.
    blind = replay(records, current(), no_emergency_widening(), grants=grants).to_json()
    assert blind["totals"] == {} and blind["recorded_differs"] == 2


def test_an_active_emergency_is_replayed_while_it_lasts() -> None:
    emergencies, grants = emergency_store()
    emergencies[0].update(status="active", ended_at="")
    grants[0].update(status="active")
    del grants[0]["revoked_at"], grants[0]["revoke_reason"]
    records = [emergency_call(60, "allow"), emergency_call(3 * 60, "allow")]
    report = replay(
        records, current(), no_emergency_widening(), grants=grants, emergencies=emergencies
    ).to_json()
    assert report["totals"] == {"allow_to_deny": 2} and report["recorded_differs"] == 0
    same = replay(records, current(), current(), grants=grants, emergencies=emergencies)
    assert same.to_json()["totals"] == {}


def test_a_call_in_the_second_an_emergency_ended_replays_under_it() -> None:
    """The store stamps whole seconds; the record's own `emergencies` says it was in force."""
    emergencies, grants = emergency_store()
    rec = emergency_call(0, "allow")
    rec["ts"] = (ENDED + timedelta(milliseconds=400)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    late = emergency_call(0, "deny")
    late["ts"] = (ENDED + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    late["request_id"] = "req_late"
    report = replay(
        [rec, late], current(), no_emergency_widening(), grants=grants, emergencies=emergencies
    ).to_json()
    assert report["recorded_differs"] == 0 and report["totals"] == {"allow_to_deny": 1}


def test_an_emergency_grant_revoked_before_the_end_is_replayed_revoked_from_then() -> None:
    emergencies, grants = emergency_store()
    grants[0].update(revoked_at=_stamp(DECLARED + timedelta(minutes=30)), revoke_reason="MISUSE")
    before, after = emergency_call(4 * 60 + 45, "allow"), emergency_call(4 * 60, "deny")
    report = replay(
        [before, after], current(), no_emergency_widening(), grants=grants, emergencies=emergencies
    ).to_json()
    assert report["recorded_differs"] == 0 and report["totals"] == {"allow_to_deny": 1}
    [group] = report["groups"]
    assert group["examples"][0]["request_id"] == before["request_id"]
