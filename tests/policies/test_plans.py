"""The shipped policy against the semantics of the brief, on the shipped catalog.

Table-driven: every (caller kind, action, dataset) combination, without and
with grants. Field lists are derived from the catalog (the catalog is the
source of truth for treatments); everything else is spelled out.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import catalog as catalog_mod
from gateway.catalog import Treatment
from gateway.plan import Plan
from gateway.policy.bundle import load_bundle
from gateway.policy.engine import RegorusEngine

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CATALOG = catalog_mod.load(POLICIES / "data" / "catalog.json")
NOW = "2026-11-21T23:30:00Z"
CALLER = "county-civil-affairs"
PURPOSE = "最低生活保障资格审核"

POP, ENT, LIC, AID, CREDIT = (
    "population.basic",
    "legal_entity.basic",
    "licence.business",
    "social_assistance.recipient",
    "credit.record",
)


@cache
def engine() -> RegorusEngine:
    return RegorusEngine(load_bundle(POLICIES))


@cache
def catalog_free_engine() -> RegorusEngine:
    # The same modules without bundle data: the property test hands in its own catalog.
    return RegorusEngine(replace(load_bundle(POLICIES), data={}))


def decide(
    kind: str, action: str, dataset: str, grants: list[dict[str, Any]] | None = None
) -> Plan:
    doc = {
        "caller": {"id": CALLER, "kind": kind, "department": "县民政局", "region": "513221"},
        "action": action,
        "dataset": dataset,
        "purpose": PURPOSE,
        "now": NOW,
    }
    result = engine().evaluate(doc, {"grants": grants or []})
    return Plan.from_policy(result, engine().version)


def released(dataset: str, side: str, only: set[str] | None = None) -> dict[str, Treatment]:
    out = {}
    for f in CATALOG.datasets[dataset].fields:
        t = f.share if side == "share" else f.open
        if f.sensitivity == "secret" or t.operator == "redact":
            continue
        if only is None or f.name in only:
            out[f.name] = t
    return out


def grant(dataset: str, fields: list[str], gid: str = "g-1", **kw: str) -> dict[str, Any]:
    return {
        "id": gid,
        "caller": CALLER,
        "dataset": dataset,
        "fields": fields,
        "purpose": PURPOSE,
        "expires_at": "2027-06-30T16:00:00Z",
        "status": "active",
        **kw,
    }


ALLOW = "ALLOW"
# (kind, action) -> dataset -> ALLOW or the deny reason, with no grant in the store.
TABLE: dict[tuple[str, str], dict[str, str]] = {
    ("agency", "lookup"): {
        POP: ALLOW, ENT: ALLOW, LIC: ALLOW, AID: "GRANT_REQUIRED", CREDIT: ALLOW,
    },
    ("counter", "lookup"): {
        POP: ALLOW, ENT: ALLOW, LIC: ALLOW, AID: "GRANT_REQUIRED", CREDIT: ALLOW,
    },
    ("public", "lookup"): {
        POP: "DATASET_NOT_OPEN", ENT: ALLOW, LIC: "GRANT_REQUIRED",
        AID: "DATASET_NOT_OPEN", CREDIT: "GRANT_REQUIRED",
    },
    ("agency", "verify.identity"): {
        POP: ALLOW, ENT: "PREDICATE_NOT_AVAILABLE", LIC: "PREDICATE_NOT_AVAILABLE",
        AID: "PREDICATE_NOT_AVAILABLE", CREDIT: "PREDICATE_NOT_AVAILABLE",
    },
    ("counter", "verify.identity"): {
        POP: ALLOW, ENT: "PREDICATE_NOT_AVAILABLE", LIC: "PREDICATE_NOT_AVAILABLE",
        AID: "PREDICATE_NOT_AVAILABLE", CREDIT: "PREDICATE_NOT_AVAILABLE",
    },
    ("public", "verify.identity"): {
        ds: "VERIFICATION_NOT_ALLOWED" for ds in (POP, ENT, LIC, AID, CREDIT)
    },
    ("agency", "verify.attributes"): {
        POP: ALLOW, ENT: ALLOW, LIC: ALLOW, AID: ALLOW, CREDIT: "PREDICATE_NOT_AVAILABLE",
    },
    ("counter", "verify.attributes"): {
        POP: ALLOW, ENT: ALLOW, LIC: ALLOW, AID: ALLOW, CREDIT: "PREDICATE_NOT_AVAILABLE",
    },
    ("public", "verify.attributes"): {
        POP: "VERIFICATION_NOT_ALLOWED", ENT: ALLOW, LIC: "VERIFICATION_NOT_ALLOWED",
        AID: "VERIFICATION_NOT_ALLOWED", CREDIT: "VERIFICATION_NOT_ALLOWED",
    },
}  # fmt: skip

PREDICATES = {
    POP: {"age_at_least", "resident_in"},
    ENT: {"entity_active"},
    LIC: {"holds_valid_licence"},
    AID: {"receives_social_assistance"},
}

ROWS = [(k, a, ds, want) for (k, a), row in TABLE.items() for ds, want in row.items()]


def test_table_covers_every_combination() -> None:
    assert {(k, a, ds) for k, a, ds, _ in ROWS} == {
        (k, a, ds)
        for k in ("agency", "counter", "public")
        for a in ("lookup", "verify.identity", "verify.attributes")
        for ds in CATALOG.datasets
    }


@pytest.mark.requirement("R3", "R4", "R6")
@pytest.mark.parametrize(("kind", "action", "dataset", "want"), ROWS)
def test_plan_without_grants(kind: str, action: str, dataset: str, want: str) -> None:
    plan = decide(kind, action, dataset)
    if want != ALLOW:
        assert (plan.allow, plan.reason) == (False, want)
        assert plan.message
        return
    assert plan.allow and plan.reason == ""
    assert plan.grant_id == "" and plan.expires_at == ""
    ob = plan.obligations
    assert ob.audit_level == "full"
    assert ob.rate_tier == ("public" if kind == "public" else "standard")
    # The caller's region bounds lookups and attribute checks, not identity checks.
    regional = CATALOG.datasets[dataset].regional
    bounded = kind == "counter" and regional and action != "verify.identity"
    assert plan.region_prefix == ("513221" if bounded else "")
    if action == "lookup":
        side = "open" if kind == "public" else "share"
        assert plan.fields == released(dataset, side)
        assert plan.predicates == frozenset()
        assert ob.receipt is False
        assert ob.reveal_existence is (kind != "public")
    else:
        assert plan.fields == {}
        assert ob.receipt is True
        if action == "verify.identity":
            assert plan.predicates == {"identity_match"}
            assert ob.reveal_existence is False
        else:
            assert plan.predicates == PREDICATES[dataset]
            assert ob.reveal_existence is (kind != "public")


@pytest.mark.parametrize("kind", ["agency", "counter", "public"])
@pytest.mark.parametrize("action", ["catalog.read", "keys.read"])
def test_metadata_reads(kind: str, action: str) -> None:
    plan = decide(kind, action, "")
    assert plan.allow
    assert (plan.fields, plan.predicates, plan.region_prefix) == ({}, frozenset(), "")
    assert plan.obligations.receipt is False


@pytest.mark.requirement("R3", "R6")
@pytest.mark.parametrize(
    ("kind", "dataset", "fields", "want_fields", "region"),
    [
        ("agency", AID, ["name", "monthly_amount", "ghost"], {"name", "monthly_amount"}, ""),
        ("counter", AID, ["id_number", "region_code"], {"id_number", "region_code"}, "513221"),
        ("public", CREDIT, ["uscc", "content", "status"], {"uscc", "status"}, ""),
        ("public", LIC, ["licence_no", "valid_until"], {"licence_no", "valid_until"}, ""),
    ],
)
def test_conditional_with_grant(
    kind: str, dataset: str, fields: list[str], want_fields: set[str], region: str
) -> None:
    plan = decide(kind, "lookup", dataset, [grant(dataset, fields)])
    side = "open" if kind == "public" else "share"
    assert plan.allow
    assert plan.fields == released(dataset, side, want_fields)
    assert (plan.grant_id, plan.expires_at) == ("g-1", "2027-06-30T16:00:00Z")
    assert plan.region_prefix == region


@pytest.mark.requirement("R6")
def test_grant_on_unopened_dataset_does_not_open_it() -> None:
    plan = decide("public", "lookup", AID, [grant(AID, ["name"])])
    assert plan.reason == "DATASET_NOT_OPEN"


@pytest.mark.requirement("R5")
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"expires_at": "2026-11-21T23:29:59Z"}, "GRANT_EXPIRED"),
        ({"status": "revoked"}, "GRANT_REQUIRED"),
        ({"status": "suspended"}, "GRANT_REQUIRED"),
        ({"purpose": "其他用途"}, "GRANT_REQUIRED"),
        ({"caller": "someone-else"}, "GRANT_REQUIRED"),
    ],
)
def test_unusable_grant(change: dict[str, str], reason: str) -> None:
    plan = decide("agency", "lookup", AID, [grant(AID, ["name"], **change)])
    assert (plan.allow, plan.reason) == (False, reason)


@pytest.mark.requirement("R4")
def test_verification_needs_no_grant() -> None:
    # R4: the conditional dataset's predicate is answered without any grant
    assert decide("agency", "verify.attributes", AID).predicates == {"receives_social_assistance"}


# ----- property: whatever the catalog, grants and input, no unknown or secret field leaves ----

NAMES = ["a", "b", "c", "d"]
FIELDS = ["f1", "f2", "f3", "f4", "f5"]
treatments = st.one_of(
    st.none(),
    st.fixed_dictionaries({"operator": st.sampled_from(["keep", "mask", "redact", "generalize"])}),
    st.fixed_dictionaries(
        {"operator": st.sampled_from(["keep", "mask"]), "params": st.just({"keep_first": 1})}
    ),
)


@st.composite
def field_docs(draw: st.DrawFn, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "sensitivity": draw(st.sampled_from(["public", "internal", "secret"])),
    }
    for side in ("share", "open"):
        t = draw(treatments)
        if t is not None:
            doc[side] = t
    return doc


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, Any]:
    datasets = {}
    for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, unique=True)):
        classes = st.sampled_from(["unconditional", "conditional", "none"])
        fields = draw(st.lists(st.sampled_from(FIELDS), unique=True))
        datasets[name] = {
            "share_class": draw(classes),
            "open_class": draw(classes),
            "sensitivity": draw(st.sampled_from(["public", "internal", "secret"])),
            "regional": draw(st.booleans()),
            "predicates": draw(st.lists(st.sampled_from(["identity_match", "p1", "p2"]))),
            "fields": [draw(field_docs(f)) for f in fields],
        }
    return {"datasets": datasets}


grants_st = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["g-1", "g-2", "g-3"]),
            "caller": st.sampled_from(["c1", "c2"]),
            "dataset": st.sampled_from(NAMES),
            "fields": st.lists(st.sampled_from([*FIELDS, "ghost"]), unique=True),
            "purpose": st.sampled_from(["p", "q"]),
            "expires_at": st.sampled_from(
                ["2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z", "2030-01-01T08:00:00+08:00", "x"]
            ),
            "status": st.sampled_from(["active", "revoked", "suspended"]),
        }
    ),
    max_size=4,
    unique_by=lambda g: g["id"],
)

inputs_st = st.fixed_dictionaries(
    {
        "caller": st.fixed_dictionaries(
            {
                "id": st.sampled_from(["c1", "c2"]),
                "kind": st.sampled_from(["agency", "counter", "public", "robot", ""]),
                "department": st.just("d"),
                "region": st.sampled_from(["513221", "513200", "510000", "", "x"]),
            }
        ),
        "action": st.sampled_from(
            ["lookup", "verify.identity", "verify.attributes", "catalog.read", "keys.read", "z"]
        ),
        "dataset": st.sampled_from([*NAMES, "", "zz"]),
        "purpose": st.sampled_from(["p", "q"]),
        "now": st.just("2026-11-21T23:30:00Z"),
    }
)


@pytest.mark.requirement("R2")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalog=catalogs(), grants=grants_st, inp=inputs_st)
def test_plan_never_lists_unknown_or_secret_fields(
    catalog: dict[str, Any], grants: list[dict[str, Any]], inp: dict[str, Any]
) -> None:
    doc = catalog_free_engine().evaluate(inp, {"catalog": catalog, "grants": grants})
    plan = Plan.from_policy(doc, "pv-test")
    if not plan.allow:
        return
    dataset = catalog["datasets"].get(inp["dataset"])
    known = {f["name"]: f for f in (dataset or {}).get("fields", [])}
    for name in plan.fields:
        assert name in known, name
        assert known[name]["sensitivity"] != "secret", name
    if plan.grant_id:
        granted = next(g for g in grants if g["id"] == plan.grant_id)
        assert set(plan.fields) <= set(granted["fields"])
        assert granted["status"] == "active"
    assert plan.predicates <= set((dataset or {}).get("predicates", []))
    assert inp["caller"]["kind"] in ("agency", "counter", "public")
