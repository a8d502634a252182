"""Data-file schema: R1 reasons and legal bases, sensitivities, operators; file, line and path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy.bundle import read_policy_files
from gateway.policy.check import check_bundle
from gateway.policy.schema import data_problems, json_lines, path_text

POLICIES = Path(__file__).resolve().parents[3] / "policies"
CATALOG = "data/catalog.json"


def shipped() -> dict[str, Any]:
    return json.loads((POLICIES / CATALOG).read_text(encoding="utf-8"))


def problems_of(catalog: Any, **files: bytes) -> list[Any]:
    text = json.dumps(catalog, ensure_ascii=False, indent=2)
    return data_problems({CATALOG: text.encode(), **files})


def line_of(catalog: Any, needle: str, after: str = "") -> int:
    rows = json.dumps(catalog, ensure_ascii=False, indent=2).split("\n")
    start = next(i for i, ln in enumerate(rows) if after in ln)
    return next(i for i, ln in enumerate(rows[start:], start + 1) if needle in ln)


def test_shipped_data_is_valid() -> None:
    assert data_problems(read_policy_files(POLICIES)) == []


@pytest.mark.requirement("R1")
def test_conditional_class_without_reason_or_basis_is_named_r1() -> None:
    cat = shipped()
    ds = cat["datasets"]["credit.record"]
    assert ds["open_class"] == "conditional"
    ds["class_reason"], ds["legal_basis"] = "", "  "
    found = problems_of(cat)
    assert [(p.rule, p.file) for p in found] == [
        ('datasets["credit.record"].class_reason', CATALOG),
        ('datasets["credit.record"].legal_basis', CATALOG),
    ]
    assert all("(R1)" in p.message and "open_class conditional" in p.message for p in found)
    assert found[0].line == line_of(cat, '"class_reason": ""', after='"credit.record"')


@pytest.mark.requirement("R1")
def test_none_class_needs_them_too_and_unconditional_does_not() -> None:
    cat = shipped()
    le = cat["datasets"]["legal_entity.basic"]
    le["class_reason"] = le["legal_basis"] = ""
    assert problems_of(cat) == []  # both classes unconditional
    le["share_class"] = "none"
    assert {p.rule for p in problems_of(cat)} == {
        'datasets["legal_entity.basic"].class_reason',
        'datasets["legal_entity.basic"].legal_basis',
    }


@pytest.mark.requirement("R2")
def test_field_without_sensitivity_points_at_the_field() -> None:
    cat = shipped()
    del cat["datasets"]["population.basic"]["fields"][2]["sensitivity"]
    [p] = problems_of(cat)
    assert p.rule == 'datasets["population.basic"].fields[2].sensitivity'
    text = json.dumps(cat, ensure_ascii=False, indent=2).splitlines()
    assert text[p.line - 1].strip() == "{"  # the field's object: the key itself is missing
    assert '"name": "gender"' in text[p.line]


def test_unknown_operator_and_bad_params_are_named() -> None:
    cat = shipped()
    fields = cat["datasets"]["population.basic"]["fields"]
    fields[1]["open"]["operator"] = "scramble"
    fields[0]["share"]["params"]["keep_firstt"] = 2
    found = {p.rule: p for p in problems_of(cat)}
    op = found['datasets["population.basic"].fields[1].open.operator']
    assert "scramble does not exist" in op.message and "mask" in op.message
    param = found['datasets["population.basic"].fields[0].share.params.keep_firstt']
    assert "unknown param" in param.message


@pytest.mark.requirement("R1")
def test_other_catalog_mistakes() -> None:
    cat = shipped()
    ds = cat["datasets"]["population.basic"]
    ds["predicates"].append("mind_reading")
    ds["fields"].append(dict(ds["fields"][0]))
    ds["share_class"] = "sometimes"
    ds["subject_field"] = "nope"
    ds["provider"] = ""
    rules = {p.rule for p in problems_of(cat)}
    assert {
        'datasets["population.basic"].predicates[3]',
        f'datasets["population.basic"].fields[{len(ds["fields"]) - 1}].name',
        'datasets["population.basic"].share_class',
        'datasets["population.basic"].subject_field',
        'datasets["population.basic"].provider',
    } <= rules


@pytest.mark.requirement("R1")
def test_every_dataset_names_its_provider_by_id() -> None:
    cat = shipped()
    del cat["datasets"]["population.basic"]["provider_id"]
    cat["datasets"]["credit.record"]["provider_id"] = "county.development-reform\n"
    # One id, two departments: the second would act on the first's datasets.
    cat["datasets"]["licence.business"]["provider_id"] = "county.civil-affairs"
    found = {p.rule: p.message for p in problems_of(cat)}
    assert "provider_id is required" in found['datasets["population.basic"].provider_id']
    assert "provider_id is required" in found['datasets["credit.record"].provider_id']
    dup = [m for r, m in found.items() if r.endswith("provider_id") and "already names" in m]
    assert len(dup) == 1 and "县民政局" in dup[0] and "县行政审批局" in dup[0]
    assert problems_of(shipped()) == []


def test_runtime_data_and_non_objects_are_refused() -> None:
    cat = shipped()
    found = problems_of(cat, **{"data/grants.json": b"[]", "data/extra.json": b"[1, 2]"})
    assert [(p.file, p.message.split(" ")[0]) for p in found] == [
        ("data/extra.json", "a"),
        ("data/grants.json", "data.grants"),
    ]
    assert data_problems({"policy.rego": b"package x"})[0].message.startswith("the bundle has no")


@pytest.mark.requirement("R1")
def test_check_bundle_reports_data_problems_before_evaluating(tmp_path: Path) -> None:
    shutil.copytree(POLICIES, tmp_path / "p")
    cat = shipped()
    cat["datasets"]["social_assistance.recipient"]["legal_basis"] = ""
    (tmp_path / "p" / CATALOG).write_text(json.dumps(cat, ensure_ascii=False, indent=2))
    [p] = check_bundle(tmp_path / "p")
    assert (p.kind, p.file) == ("data", CATALOG)
    assert str(p).startswith(f'{CATALOG}:{p.line} (rule datasets["social_assistance.recipient"]')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(doc=st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=5))
def test_json_lines_locates_every_member(doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    lines = json_lines(text)
    rows = text.split("\n")  # what editors count; str.splitlines also breaks on U+0085

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                assert (
                    rows[lines[(*path, k)] - 1]
                    .lstrip()
                    .startswith(json.dumps(k, ensure_ascii=False) + ":")
                ), path_text((*path, k))
                walk(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                assert (*path, i) in lines
                walk(v, (*path, i))

    walk(doc, ())
