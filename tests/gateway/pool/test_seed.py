"""The demo seeder and the benchmark's bulk path produce valid, deterministic data."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from gateway.pool import Pool, bulk_persons, seed_demo, validate_row
from gateway.pool.seed import BULK_ORDER_BASE, REFERENCE_DATE, DemoSubjects
from tests.gateway.pool import CATALOG, new_pool

PERSONS, ENTITIES = 150, 40


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pool, DemoSubjects]]:
    pool = new_pool(tmp_path_factory.mktemp("seed"))
    demo = seed_demo(pool, persons=PERSONS, entities=ENTITIES)
    yield pool, demo
    pool.close()


def age_on(born: str, day: date) -> int:
    b = date.fromisoformat(born)
    return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


def test_every_seeded_row_passes_validation(seeded: tuple[Pool, DemoSubjects]) -> None:
    pool, _ = seeded
    for name, ds in CATALOG.datasets.items():
        rows = list(pool.iter_rows(name))
        assert len(rows) == pool.count(name) > 0, name
        for row in rows:
            assert validate_row(ds, row) == (row, []), name


def test_dataset_sizes(seeded: tuple[Pool, DemoSubjects]) -> None:
    pool, _ = seeded
    assert pool.count("population.basic") == PERSONS
    assert pool.count("legal_entity.basic") == ENTITIES
    assert 1 <= pool.count("social_assistance.recipient") <= PERSONS * 0.1
    assert pool.count("licence.business") >= ENTITIES * 0.6
    entities = list(pool.iter_rows("legal_entity.basic"))
    assert sum(e["status"] == "存续" for e in entities) > ENTITIES / 2


def test_the_known_subjects_are_what_they_claim(seeded: tuple[Pool, DemoSubjects]) -> None:
    pool, demo = seeded
    adult, minor, recipient = demo.adult_resident, demo.minor, demo.assistance_recipient
    for p in (adult, minor, recipient):
        [row] = pool.read("population.basic", p.id_number)
        assert row["name"] == p.name and row["birth_date"] == p.birth_date
    assert age_on(adult.birth_date, REFERENCE_DATE) >= 18
    assert age_on(minor.birth_date, REFERENCE_DATE) < 18
    assert adult.phone.startswith("1") and adult.household_address.startswith("四川省阿坝")
    [aid] = pool.read("social_assistance.recipient", recipient.id_number)
    assert aid["assistance_type"] == recipient.assistance_type == "最低生活保障"
    assert aid["end_date"] == ""
    assert pool.read("social_assistance.recipient", adult.id_number) == []

    active, gone = demo.active_entity, demo.deregistered_entity
    [entity] = pool.read("legal_entity.basic", active.uscc)
    assert entity["status"] == active.status == "存续"
    licences = pool.read("licence.business", active.uscc)
    # Valid on the seed's reference date, not on whatever day the tests run: the
    # seeded data is fixed, the calendar is not.
    assert any(
        lic["status"] == "有效" and lic["valid_until"] > REFERENCE_DATE.isoformat()
        for lic in licences
    )
    assert active.licence_no in {lic["licence_no"] for lic in licences}
    [entity] = pool.read("legal_entity.basic", gone.uscc)
    assert entity["status"] == gone.status == "注销"
    assert all(lic["status"] != "有效" for lic in pool.read("licence.business", gone.uscc))
    assert set(demo.versions) == set(CATALOG.datasets)


def test_demo_subjects_serialise_to_json(seeded: tuple[Pool, DemoSubjects]) -> None:
    _, demo = seeded
    doc = json.loads(json.dumps(demo.to_json(), ensure_ascii=False))
    assert doc["adult_resident"]["id_number"] == demo.adult_resident.id_number
    assert doc["active_entity"]["licence_type"] == demo.active_entity.licence_type
    assert doc["versions"] == demo.versions


def test_the_seed_decides_everything(tmp_path: Path, seeded: tuple[Pool, DemoSubjects]) -> None:
    _, demo = seeded
    with new_pool(tmp_path / "a") as a, new_pool(tmp_path / "b") as b:
        same = seed_demo(a, persons=PERSONS, entities=ENTITIES)
        other = seed_demo(b, persons=PERSONS, entities=ENTITIES, seed=1)
    assert dataclasses.replace(same, versions={}) == dataclasses.replace(demo, versions={})
    assert other.adult_resident.id_number != demo.adult_resident.id_number


def test_seeding_again_replaces_the_demo_datasets(tmp_path: Path) -> None:
    with new_pool(tmp_path) as pool:
        seed_demo(pool, persons=20, entities=5)
        seed_demo(pool, persons=10, entities=4, seed=2)
        assert pool.count("population.basic") == 10
        assert pool.count("legal_entity.basic") == 4


def test_bulk_persons_are_valid_distinct_and_leave_demo_persons_alone(tmp_path: Path) -> None:
    ds = CATALOG.datasets["population.basic"]
    with new_pool(tmp_path) as pool:
        demo = seed_demo(pool, persons=30, entities=2)
        bulk_persons(pool, 3000, seed=5)
        assert pool.count("population.basic") == 3030
        rows = list(pool.iter_rows("population.basic"))
        assert len({r["id_number"] for r in rows}) == 3030
        bulk = [r for r in rows if int(r["id_number"][14:17]) >= BULK_ORDER_BASE]
        assert len(bulk) == 3000
        for row in bulk[:400]:  # validate_row costs ~100 us a row (the region lookup)
            assert validate_row(ds, row) == (row, [])
        assert {r["region_code"] for r in bulk} >= {"513201", "513221", "513224"}
        assert pool.read("population.basic", demo.minor.id_number)[0]["name"] == demo.minor.name
