"""The subject's own records (R8): which datasets, which values, what is withheld,
what is marked, read through a real encrypted pool."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.access.subject_tokens import SubjectIdentity
from gateway.errors import GovgwError
from gateway.release.own import (
    WITHHELD_SECRET,
    datasets_of,
    field_views,
    my_records,
)
from gateway.subjects import LEGAL_ENTITY, PERSON
from tests.gateway.pool import CATALOG, licence, new_pool, person, uscc_code

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
ME = person("陈凯", order=11)
SOMEONE = person("李娜", order=12)
CODE = uscc_code()


def subject(key: str, kind: str = PERSON) -> SubjectIdentity:
    return SubjectIdentity(key, kind, "sc-idp", "t", NOW + timedelta(minutes=10), NOW)


def test_datasets_of_the_subjects_kind_in_catalog_order() -> None:
    persons = [ds.name for ds in datasets_of(CATALOG, subject(ME["id_number"]))]
    entities = [ds.name for ds in datasets_of(CATALOG, subject(CODE, LEGAL_ENTITY))]
    assert persons == ["population.basic", "social_assistance.recipient"]
    assert entities == ["legal_entity.basic", "licence.business", "credit.record"]
    only = datasets_of(CATALOG, subject(CODE, LEGAL_ENTITY), "licence.business")
    assert [ds.name for ds in only] == ["licence.business"]


@pytest.mark.parametrize(
    ("dataset", "reason"),
    [("no.such", "UNKNOWN_DATASET"), ("legal_entity.basic", "DATASET_SUBJECT_KIND")],
)
def test_datasets_of_refuses_a_dataset_the_subject_cannot_be_in(dataset: str, reason: str) -> None:
    with pytest.raises(GovgwError) as e:
        datasets_of(CATALOG, subject(ME["id_number"]), dataset)
    assert e.value.reason == reason
    assert [v.field for v in e.value.violations] == ["dataset"]


@pytest.mark.requirement("R2", "R8")
def test_field_views_show_raw_values_withhold_secret_fields_and_mark_pending_ones() -> None:
    ds = CATALOG.get("population.basic")
    assert ds is not None
    secret_phone = dataclasses.replace(
        ds,
        fields=tuple(
            dataclasses.replace(f, sensitivity="secret") if f.name == "phone" else f
            for f in ds.fields
        ),
    )
    views = {v.name: v for v in field_views(secret_phone, ME, {"name": "2026-05-30"})}
    assert list(views) == list(ds.field_names)
    # Unmasked: the share treatment of id_number is a pseudonym, of name a mask.
    assert views["id_number"].value == ME["id_number"] and views["name"].value == "陈凯"
    assert (views["phone"].value, views["phone"].withheld_reason) == ("", WITHHELD_SECRET)
    assert views["name"].pending_since == "2026-05-30"
    assert all(not v.pending_since for n, v in views.items() if n != "name")
    assert views["household_address"].title == ds.field("household_address").title  # type: ignore[union-attr]


@pytest.mark.requirement("R8")
def test_my_records_reads_the_subjects_own_records_only(tmp_path: Path) -> None:
    pool = new_pool(tmp_path)
    pool.write_batch("population.basic", [ME, SOMEONE])
    pool.write_batch(
        "legal_entity.basic",
        [
            {
                "uscc": CODE,
                "name": "汶川县羌绣坊",
                "legal_representative": "陈凯",
                "registered_address": "汶川县威州镇",
                "region_code": "513221",
                "status": "存续",
                "established_date": "2019-05-20",
            }
        ],
    )
    pool.write_batch("licence.business", [licence(CODE, "JY1"), licence(CODE, "JY2")])
    pending = {("population.basic", ME["id_number"]): {"household_address": "2026-06-01"}}
    withdrawn = {("legal_entity.basic", CODE)}

    def disputed(ds: str, key: str) -> dict[str, str]:
        return pending.get((ds, key), {})

    me = subject(ME["id_number"])
    [view] = my_records(
        pool,
        datasets_of(CATALOG, me),
        me,
        disputed=disputed,
        withdrawn=lambda ds, key: (ds, key) in withdrawn,
    )
    assert view.dataset.name == "population.basic"  # no social-assistance record: left out
    assert [{f.name: f.value for f in r} for r in view.records] == [ME]
    assert {f.name for r in view.records for f in r if f.pending_since} == {"household_address"}
    history = pool.versions("population.basic")
    assert (view.version, view.imported_at) == (history[0]["version"], history[0]["imported_at"])
    assert not view.withdrawn

    entity = subject(CODE, LEGAL_ENTITY)
    views = my_records(
        pool,
        datasets_of(CATALOG, entity),
        entity,
        disputed=None,
        withdrawn=lambda ds, key: (ds, key) in withdrawn,
    )
    assert [v.dataset.name for v in views] == ["legal_entity.basic", "licence.business"]
    # Withdrawn from open data, shown to its subject all the same, and marked.
    assert views[0].withdrawn and views[0].records[0][0].value == CODE
    assert [r[1].value for r in views[1].records] == ["JY1", "JY2"]
    assert not views[1].withdrawn


def test_my_records_with_no_record_anywhere(tmp_path: Path) -> None:
    pool = new_pool(tmp_path)
    pool.write_batch("population.basic", [SOMEONE])
    me = subject(ME["id_number"])
    assert my_records(pool, datasets_of(CATALOG, me), me, disputed=None, withdrawn=None) == []
