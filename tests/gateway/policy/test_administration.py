"""Pieces of policy administration that need no server: pool structure, bundle paths."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.catalog import load as load_catalog
from gateway.policy.administration import structure_problems
from gateway.policy.bundle import is_bundle_path

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def served() -> dict[str, tuple[str, ...]]:
    return {n: ds.field_names for n, ds in load_catalog().datasets.items()}


def test_a_version_may_not_change_what_the_pool_holds() -> None:
    doc = json.loads((POLICIES / "data" / "catalog.json").read_text(encoding="utf-8"))
    assert structure_problems(doc, served()) == []
    doc["datasets"]["population.basic"]["share_class"] = "conditional"  # classes may change
    assert structure_problems(doc, served()) == []
    doc["datasets"]["new.thing"] = doc["datasets"].pop("credit.record")
    doc["datasets"]["population.basic"]["fields"].append({"name": "blood_type"})
    messages = sorted(p.message for p in structure_problems(doc, served()))
    assert messages[0] == "dataset credit.record is missing; the pool holds it"
    assert messages[1] == "dataset new.thing is not in the pool"
    assert messages[2].startswith("field blood_type of population.basic differs")


@given(
    st.lists(
        st.sampled_from(["a", "..", ".", "", ".git", "data", "x.rego", "y.json"]),
        min_size=1,
        max_size=4,
    )
)
def test_bundle_paths_stay_inside_the_bundle(parts: list[str]) -> None:
    path = "/".join(parts)
    if is_bundle_path(path):
        assert ".." not in parts and "." not in parts and "" not in parts
        assert not any(p.startswith(".") for p in parts)
        assert path.endswith(".rego") or (len(parts) == 2 and parts[0] == "data")
    assert not is_bundle_path("/" + path)


def test_bundle_paths_refuse_control_characters_and_long_names() -> None:
    assert is_bundle_path("tests/share_test.rego") and is_bundle_path("data/catalog.json")
    for bad in ("a\x00.rego", "a\n.rego", "x" * 101 + ".rego", "a\\b.rego", "data/x/y.json"):
        assert not is_bundle_path(bad), bad
