"""Attribute concepts in the catalog (R16): each names a described concept, once, of the right kind."""

from __future__ import annotations

from typing import Any

from gateway.catalog import ATTRIBUTE_CONCEPTS, parse
from tests.gateway.policy.test_schema import CATALOG, line_of, problems_of, shipped

POP = 'datasets["population.basic"]'


def name_field(cat: dict[str, Any], dataset: str = "population.basic") -> dict[str, Any]:
    return next(f for f in cat["datasets"][dataset]["fields"] if f["name"] == "name")


def rules(cat: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.rule, p.message) for p in problems_of(cat)]


def test_shipped_catalog_describes_every_concept_it_uses() -> None:
    cat = parse(shipped())
    assert set(cat.concepts) == set(ATTRIBUTE_CONCEPTS)
    held = {
        (d.name, f.name): f.attribute
        for d in cat.datasets.values()
        for f in d.fields
        if f.attribute
    }
    assert held[("social_assistance.recipient", "birth_date")] == "person.birth_date"
    assert held[("social_assistance.recipient", "household_address")] == "person.address"
    assert held[("population.basic", "name")] == "person.name"
    assert [d.name for d, _ in cat.attribute_fields("person.name")] == [
        "population.basic",
        "social_assistance.recipient",
    ]
    assert cat.datasets["population.basic"].field("birth_date").derived_from_subject  # type: ignore[union-attr]
    assert cat.subject_key_report["person"].operator == "mask"


def test_unknown_concept_is_named_with_file_line_and_path() -> None:
    cat = shipped()
    name_field(cat)["attribute"] = "person.nickname"
    [p] = problems_of(cat)
    assert p.file == CATALOG
    assert p.rule == f"{POP}.fields[1].attribute"
    assert p.message.startswith("attribute concept person.nickname does not exist (person.name,")
    assert p.line == line_of(cat, '"attribute": "person.nickname"')


def test_concept_of_the_other_subject_kind_is_refused() -> None:
    cat = shipped()
    name_field(cat)["attribute"] = "entity.name"
    assert rules(cat) == [
        (
            f"{POP}.fields[1].attribute",
            "attribute concept entity.name is about a legal_entity, the dataset's subjects are"
            " person",
        )
    ]


def test_one_field_per_concept_in_a_dataset() -> None:
    cat = shipped()
    fields = cat["datasets"]["population.basic"]["fields"]
    next(f for f in fields if f["name"] == "ethnicity")["attribute"] = "person.name"
    assert rules(cat) == [
        (
            f"{POP}.fields[4].attribute",
            "attribute concept person.name is already held by field name: one field per concept",
        )
    ]


def test_a_concept_used_must_be_described() -> None:
    cat = shipped()
    del cat["conflicts"]["attributes"]["person.name"]
    found = rules(cat)
    assert [r for r, _ in found] == [
        f"{POP}.fields[1].attribute",
        'datasets["social_assistance.recipient"].fields[1].attribute',
    ]
    assert all("is not described in conflicts.attributes" in m for _, m in found)


def test_report_treatments_never_show_a_person_raw() -> None:
    cat = shipped()
    cat["conflicts"]["attributes"]["person.birth_date"]["report"] = {"operator": "keep"}
    cat["conflicts"]["subject_keys"]["person"] = {"operator": "keep"}
    # A legal entity's registered name is public: keep is allowed there.
    cat["conflicts"]["attributes"]["entity.address"]["report"] = {"operator": "keep"}
    assert [r for r, _ in rules(cat)] == [
        'conflicts.attributes["person.birth_date"].report.operator',
        "conflicts.subject_keys.person.operator",
    ]
    assert all("never shows a person's raw value" in m for _, m in rules(cat))


def test_conflicts_section_shape_is_checked() -> None:
    cat = shipped()
    c = cat["conflicts"]
    c["attributes"]["person.shoe_size"] = {"title": "鞋码", "report": {"operator": "redact"}}
    c["attributes"]["person.name"]["report"] = {"operator": "blur"}
    del c["attributes"]["person.address"]["title"]
    c["subject_keys"]["robot"] = {"operator": "redact"}
    name_field(cat)["derived_from_subject"] = "yes"
    found = [r for r, _ in rules(cat)]
    assert found == [
        'conflicts.attributes["person.name"].report.operator',
        'conflicts.attributes["person.address"].title',
        'conflicts.attributes["person.shoe_size"]',
        "conflicts.subject_keys.robot",
        f"{POP}.fields[1].derived_from_subject",
    ]
    cat["conflicts"] = []
    assert next(r for r, _ in rules(cat)) == "conflicts"


def test_a_catalog_without_the_section_is_valid_if_no_field_names_a_concept() -> None:
    cat = shipped()
    del cat["conflicts"]
    for ds in cat["datasets"].values():
        for f in ds["fields"]:
            f.pop("attribute", None)
    assert problems_of(cat) == []
    assert parse(cat).concepts == {}
