"""The conflicts report (R16): normalization, the join across datasets, paging, masking."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import grpc
import pytest

from gateway.catalog import Catalog, parse
from gateway.errors import GovgwError
from gateway.keys import KeyRing
from gateway.pool import Pool
from gateway.pool.conflicts import (
    ConflictFinder,
    normalize,
    normalize_address,
    normalize_date,
    normalize_name,
)
from tests.gateway.pool import CATALOG, new_keyring, new_pool, person

TODAY = date(2026, 11, 21)
POP, AID = "population.basic", "social_assistance.recipient"
ADDRESS = "四川省阿坝藏族羌族自治州汶川县威州镇羌锋村2组8号"


# ----- normalization: formatting alone is never a conflict ------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("泽仁卓玛", "泽仁 卓玛"),  # a blank
        ("泽仁卓玛", "泽仁\u3000卓玛"),  # an ideographic space
        ("阿卜杜·热合曼", "阿卜杜热合曼"),  # the middle dot of a transliterated name
        ("阿卜杜·热合曼", "阿卜杜・热合曼"),  # another dot code point
        ("ＬＩ Ｍｉｎｇ", "li ming"),  # full-width Latin letters, case
    ],
)
def test_names_equal_after_normalizing(a: str, b: str) -> None:
    assert normalize_name(a) == normalize_name(b)


@pytest.mark.parametrize(("a", "b"), [("泽仁卓玛", "泽仁卓瑪"), ("张伟", "张玮"), ("李华", "李華")])
def test_a_variant_or_other_character_is_a_different_name(a: str, b: str) -> None:
    assert normalize_name(a) != normalize_name(b)


@pytest.mark.parametrize(
    "written",
    ["1958-09-30", "1958/9/30", "1958.09.30", "19580930", "1958年9月30日", "１９５８－０９－３０",
     " 1958 年 09 月 30 日 "],
)  # fmt: skip
def test_date_notations_are_one_date(written: str) -> None:
    assert normalize_date(written) == "1958-09-30"


def test_different_or_impossible_dates_stay_different() -> None:
    assert normalize_date("1958-09-30") != normalize_date("1958-10-30")
    assert normalize_date("1958-02-30") == "1958-02-30"  # compared as written, not a crash
    assert normalize_date("不详") == "不详"


@pytest.mark.parametrize(
    "written",
    [
        ADDRESS,
        "汶川县威州镇羌锋村2组8号",  # without province and prefecture
        "四川省 阿坝藏族羌族自治州 汶川县 威州镇 羌锋村 2组 8号",  # blanks
        "四川省阿坝藏族羌族自治州汶川县威州镇羌锋村２组８号",  # full-width digits
        "四川省阿坝藏族羌族自治州汶川县威州镇羌锋村二组八号",  # Chinese numerals before units
        "四川省阿坝藏族羌族自治州汶川县威州镇羌锋村2组8",  # no trailing 号
        "四川省阿坝藏族羌族自治州汶川县，威州镇羌锋村2组8號",  # punctuation, traditional 號
    ],
)
def test_address_noise_is_not_a_difference(written: str) -> None:
    assert normalize_address(written) == normalize_address(ADDRESS) == "汶川县威州镇羌锋村2组8"


@pytest.mark.parametrize(
    "other",
    [
        "四川省阿坝藏族羌族自治州汶川县威州镇羌锋村2组18号",  # another house
        "四川省阿坝藏族羌族自治州汶川县映秀镇羌锋村2组8号",  # another town
        "四川省阿坝藏族羌族自治州理县威州镇羌锋村2组8号",  # another county
        "四川省阿坝藏族羌族自治州汶川县威州镇羌锋村2组8号附1号",
    ],
)
def test_a_different_place_stays_different(other: str) -> None:
    assert normalize_address(other) != normalize_address(ADDRESS)


def test_chinese_numerals_with_tens_and_hundreds() -> None:
    assert normalize_address("汶川县威州镇十二组一百零五号") == "汶川县威州镇12组105"
    assert normalize_address("汶川县威州镇二十组三十号") == "汶川县威州镇20组30"
    assert normalize("address", "汶川县威州镇十组") == "汶川县威州镇10组"


# ----- the join --------------------------------------------------------------------------------


def aid_row(p: dict[str, str], **over: str) -> dict[str, str]:
    row = {
        "id_number": p["id_number"],
        "name": p["name"],
        "birth_date": p["birth_date"],
        "household_address": p["household_address"],
        "assistance_type": "最低生活保障",
        "start_date": "2024-01-01",
        "end_date": "",
        "monthly_amount": "700.00",
        "region_code": p["region_code"],
    }
    return {**row, **over}


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return new_keyring(tmp_path)


@pytest.fixture
def pool(tmp_path: Path, ring: KeyRing) -> Iterator[Pool]:
    with new_pool(tmp_path, ring) as p:
        yield p


def persons(n: int) -> list[dict[str, str]]:
    return [person(f"陈{'凯明杰华'[i % 4]}", born=date(1980 + i % 30, 1 + i % 12, 1 + i % 28),
                   order=10 + 2 * i) for i in range(n)]  # fmt: skip


def finder(pool: Pool, ring: KeyRing, catalog: Catalog = CATALOG) -> ConflictFinder:
    return ConflictFinder(pool, catalog, ring)


def report(f: ConflictFinder, **kw: object) -> list[dict[str, object]]:
    return [c.to_json() for c in f.all(caller_id="coordinator", today=TODAY, **kw)]  # type: ignore[arg-type]


@pytest.mark.requirement("R16")
def test_formatting_only_differences_report_nothing(pool: Pool, ring: KeyRing) -> None:
    people = persons(6)
    pool.write_batch(POP, people)
    pool.write_batch(
        AID,
        [
            aid_row(people[0], name="陈 凯"),
            aid_row(people[1], household_address="汶川县威州镇羌锋村二组8号"),
            aid_row(people[2], household_address=ADDRESS.translate(str.maketrans("28", "２８"))),
            aid_row(people[3], birth_date=""),  # missing is not a disagreement
            aid_row(people[4], household_address=""),
        ],
    )
    assert report(finder(pool, ring)) == []


@pytest.mark.requirement("R16")
def test_each_attribute_that_differs_is_one_entry(pool: Pool, ring: KeyRing) -> None:
    people = persons(8)
    pool.write_batch(POP, people)
    a, b, c = people[0], people[1], people[2]
    pool.write_batch(
        AID,
        [
            aid_row(a, name="陈凱"),  # a variant character
            aid_row(b, birth_date="1999-01-01", household_address="汶川县映秀镇渔子溪村1组3号"),
            aid_row(c),
            aid_row(people[3]),
        ],
    )
    found = report(finder(pool, ring))
    got = {(e["subject_hash"], e["attribute"]) for e in found}
    assert got == {
        (ring.subject_hash(a["id_number"]), "person.name"),
        (ring.subject_hash(b["id_number"]), "person.birth_date"),
        (ring.subject_hash(b["id_number"]), "person.address"),
    }
    assert len(found) == 3
    name = next(e for e in found if e["attribute"] == "person.name")
    assert name["subject_kind"] == "person"
    assert name["subject_masked"] == a["id_number"][:6] + "*" * 8 + a["id_number"][-4:]
    values = {v["dataset"]: v for v in name["values"]}  # type: ignore[union-attr]
    assert set(values) == {POP, AID}
    assert values[POP]["provider"] == "县公安局" and values[AID]["provider"] == "县民政局"
    assert values[POP]["field"] == values[AID]["field"] == "name"
    assert values[POP]["masked_value"] == values[AID]["masked_value"] == "陈*"
    assert {values[POP]["value_group"], values[AID]["value_group"]} == {"A", "B"}
    assert values[POP]["dataset_version"] == pool.dataset_version(POP)
    assert values[AID]["imported_at"] == pool.versions(AID)[0]["imported_at"]
    born = next(e for e in found if e["attribute"] == "person.birth_date")
    assert {v["masked_value"] for v in born["values"]} == {"1999", b["birth_date"][:4]}  # type: ignore[union-attr]
    text = json.dumps(found, ensure_ascii=False)
    for raw in (a["id_number"], b["id_number"], a["name"], "陈凱", "1999-01-01", ADDRESS,
                "汶川县映秀镇渔子溪村1组3号"):  # fmt: skip
        assert raw not in text


@pytest.mark.requirement("R16")
def test_attribute_filter(pool: Pool, ring: KeyRing) -> None:
    people = persons(3)
    pool.write_batch(POP, people)
    pool.write_batch(AID, [aid_row(people[0], name="陈凱", birth_date="1999-01-01")])
    f = finder(pool, ring)
    assert [e["attribute"] for e in report(f, attribute="person.name")] == ["person.name"]
    assert [e["attribute"] for e in report(f, attribute="person.birth_date")] == [
        "person.birth_date"
    ]
    assert report(f, attribute="person.address") == []
    assert report(f, attribute="entity.name") == []  # one dataset holds it: nothing to compare
    with pytest.raises(GovgwError) as e:
        f.check_attribute("person.shoe_size")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.reason == "UNKNOWN_ATTRIBUTE"
    assert [v.field for v in e.value.violations] == ["attribute"]


def backdate(db: Path, dataset: str, imported_at: str) -> None:
    """Say the dataset's imports were at `imported_at`: two imports of a test share a second."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE dataset_versions SET imported_at = ?"
            " WHERE dataset_id = (SELECT id FROM datasets WHERE name = ?)",
            (imported_at, dataset),
        )


@pytest.mark.requirement("R16")
def test_each_pair_is_graded_and_the_last_import_is_named(
    tmp_path: Path, pool: Pool, ring: KeyRing
) -> None:
    people = [person("泽仁卓玛", order=21), person("格桑达瓦", order=23), person("陈凯", order=25)]
    people[1]["household_address"] = "四川省阿坝藏族羌族自治州马尔康县马尔康镇1组8号"
    pool.write_batch(POP, people, replace_all=True)
    pool.write_batch(
        AID,
        [
            aid_row(people[0], name="泽仁卓瑪", birth_date="1986-04-21"),
            aid_row(people[1], name="泽仁拉姆", household_address="马尔康市马尔康镇１组８号"),
            aid_row(people[2], name="陈恺"),
        ],
    )
    backdate(tmp_path / "pool.db", POP, "2025-03-01T08:00:00Z")
    found = {(e["subject_hash"], e["attribute"]): e for e in report(finder(pool, ring))}
    key = [ring.subject_hash(p["id_number"]) for p in people]

    def pair(subject: int, attribute: str) -> dict[str, object]:
        entry = found[(key[subject], attribute)]
        assert len(entry["differences"]) == 1  # type: ignore[arg-type]
        return entry["differences"][0]  # type: ignore[index,no-any-return]

    assert pair(0, "person.name") == {
        "first_value": 1, "second_value": 2, "verdict": "format only",
        "equal_after": ["variant characters"], "edit_distance": 1,
        "first_length": 4, "second_length": 4, "first_positions": [4],
        "second_positions": [4], "positions_withheld": False,
    }  # fmt: skip
    assert pair(0, "person.birth_date")["verdict"] == "small difference"  # 12 -> 21: distance 2
    assert pair(1, "person.name")["verdict"] == "different"
    assert pair(1, "person.address")["verdict"] == "format only"
    assert pair(1, "person.address")["equal_after"] == [
        "width", "province and prefecture", "renamed division"
    ]  # fmt: skip
    short = pair(2, "person.name")  # 陈凯 / 陈恺: too short for positions
    assert short["verdict"] == "small difference" and short["positions_withheld"] is True
    assert short["first_positions"] == short["second_positions"] == []
    # Which provider updated last: the civil-affairs register, imported after the
    # population register; the latter's only import replaced it whole.
    for entry in found.values():
        held = {v["dataset"]: v for v in entry["values"]}  # type: ignore[union-attr]
        assert held[AID]["imported_last"] is True and held[POP]["imported_last"] is False
        assert held[POP]["written_at_import"] is True
        assert held[AID]["written_at_import"] is False
        assert held[POP]["imported_at"] == "2025-03-01T08:00:00Z"


def test_imports_in_the_same_second_name_no_last(tmp_path: Path, pool: Pool, ring: KeyRing) -> None:
    people = persons(2)
    pool.write_batch(POP, people)
    pool.write_batch(AID, [aid_row(people[0], name="陈凱")])
    for dataset in (POP, AID):
        backdate(tmp_path / "pool.db", dataset, "2026-11-20T09:00:00Z")
    [entry] = report(finder(pool, ring))
    values = entry["values"]
    assert [v["imported_at"] for v in values] == ["2026-11-20T09:00:00Z"] * 2  # type: ignore[union-attr]
    assert [v["imported_last"] for v in values] == [False, False]  # type: ignore[union-attr]
    backdate(tmp_path / "pool.db", POP, "2026-11-20T08:59:59Z")  # a second earlier
    [entry] = report(finder(pool, ring))
    assert {v["dataset"]: v["imported_last"] for v in entry["values"]} == {POP: False, AID: True}  # type: ignore[union-attr]


def three_datasets() -> Catalog:
    """The shipped catalog plus a third person dataset holding the name (a health register)."""
    doc = copy.deepcopy(CATALOG.raw)
    health = copy.deepcopy(doc["datasets"][AID])
    health["provider"] = "县卫生健康局"
    doc["datasets"]["health.resident"] = health
    return parse(doc)


@pytest.mark.requirement("R16")
def test_a_subject_in_three_datasets_is_reported_once_with_every_value(
    tmp_path: Path, ring: KeyRing
) -> None:
    catalog = three_datasets()
    with Pool(tmp_path / "three.db", ring, catalog) as pool:
        people = persons(5)
        pool.write_batch(POP, people)
        pool.write_batch(AID, [aid_row(p) for p in people[:3]])
        pool.write_batch(
            "health.resident",
            [aid_row(people[0], name="陈凱"), aid_row(people[1]), aid_row(people[3], name="陈恺")],
        )
        found = report(finder(pool, ring, catalog))
    assert [(e["subject_hash"], e["attribute"]) for e in found] in (
        [(ring.subject_hash(people[0]["id_number"]), "person.name"),
         (ring.subject_hash(people[3]["id_number"]), "person.name")],
        [(ring.subject_hash(people[3]["id_number"]), "person.name"),
         (ring.subject_hash(people[0]["id_number"]), "person.name")],
    )  # fmt: skip
    first = next(e for e in found if e["subject_hash"] == ring.subject_hash(people[0]["id_number"]))
    groups = {v["dataset"]: v["value_group"] for v in first["values"]}  # type: ignore[union-attr]
    assert len(groups) == 3
    assert groups[POP] == groups[AID] != groups["health.resident"]
    # Three values, three pairs of different datasets: the two registers that agree
    # are format only (identical), each against the third a variant character.
    datasets = [v["dataset"] for v in first["values"]]  # type: ignore[union-attr]
    pairs = {
        frozenset((datasets[d["first_value"] - 1], datasets[d["second_value"] - 1])): d
        for d in first["differences"]  # type: ignore[union-attr]
    }
    assert len(pairs) == 3
    assert pairs[frozenset((POP, AID))]["verdict"] == "format only"
    assert pairs[frozenset((POP, AID))]["edit_distance"] == 0
    assert pairs[frozenset((POP, "health.resident"))]["verdict"] == "format only"
    assert pairs[frozenset((POP, "health.resident"))]["equal_after"] == ["variant characters"]


def test_pages_walk_the_whole_report_and_resume(pool: Pool, ring: KeyRing) -> None:
    people = persons(40)
    pool.write_batch(POP, people)
    pool.write_batch(
        AID,
        [aid_row(p, name="陈凱", birth_date="1999-01-01") if i % 4 == 0 else aid_row(p)
         for i, p in enumerate(people[:30])],
    )  # fmt: skip
    f = finder(pool, ring)
    whole = report(f)
    assert len(whole) == 2 * 8  # 8 subjects, two attributes each
    for size, budget in ((1, 5000), (3, 5000), (100, 4), (5, 2)):
        token, seen, pages = "", [], 0
        while True:
            page = f.page(page_size=size, page_token=token, caller_id="coordinator",
                          today=TODAY, scan_budget=budget)  # fmt: skip
            assert len(page.conflicts) <= size and page.subjects_scanned <= budget
            seen += [c.to_json() for c in page.conflicts]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert seen == whole, (size, budget)
        assert pages >= len(whole) // size


def test_bad_page_tokens_are_invalid_arguments(pool: Pool, ring: KeyRing) -> None:
    people = persons(6)
    pool.write_batch(POP, people)
    pool.write_batch(AID, [aid_row(p, name="陈凱") for p in people])
    f = finder(pool, ring)
    page = f.page(page_size=1, caller_id="c", today=TODAY)
    assert page.next_page_token
    for token, attribute in (
        ("not-a-token", ""),
        (page.next_page_token[:-4], ""),
        ("eyJ2IjoyfQ", ""),  # {"v":2}
        (page.next_page_token, "person.name"),  # issued for all attributes
    ):
        with pytest.raises(GovgwError) as e:
            f.page(page_token=token, attribute=attribute, caller_id="c", today=TODAY)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.reason == "PAGE_TOKEN_INVALID"
        assert [v.field for v in e.value.violations] == ["page_token"]


def test_the_walk_decrypts_one_subject_at_a_time(pool: Pool, ring: KeyRing) -> None:
    """scan_subjects is a generator over a cursor: the big dataset is probed, never walked."""
    people = persons(50)
    pool.write_batch(POP, people)
    pool.write_batch(AID, [aid_row(p) for p in people[:5]])
    page = finder(pool, ring).page(caller_id="c", today=TODAY)
    assert page.datasets == (AID, POP)  # smallest first; the largest is only probed
    assert page.subjects_scanned == 5
    walked = pool.scan_subjects(AID)
    _bidx, rows = next(walked)
    assert len(rows) == 1 and rows[0]["id_number"] in {p["id_number"] for p in people}
    walked.close()
    with pool.snapshot():
        subjects = list(pool.scan_subjects(AID))
    assert len(subjects) == 5 and sorted(b for b, _ in subjects) == [b for b, _ in subjects]
    resumed = list(pool.scan_subjects(AID, subjects[1][0]))
    assert [b for b, _ in resumed] == [b for b, _ in subjects[2:]]


# ----- the seeded pools ------------------------------------------------------------------------


def test_the_demo_plants_exactly_one_conflict_per_attribute(pool: Pool, ring: KeyRing) -> None:
    from gateway.pool import seed_demo

    demo = seed_demo(pool, persons=150, entities=5)
    planted = {(ring.subject_hash(p.id_number), p.attribute) for p in demo.planted_conflicts}
    assert {a for _, a in planted} == {"person.name", "person.birth_date", "person.address"}
    found = report(finder(pool, ring))
    assert {(e["subject_hash"], e["attribute"]) for e in found} == planted
    assert len(found) == 3
    # The civil-affairs register re-types addresses (no province, full-width
    # digits, no trailing 号): the demo holds such rows, and they are no conflict.
    pop = {r["id_number"]: r for r in pool.iter_rows(POP)}
    retyped = [
        r for r in pool.iter_rows(AID)
        if r["household_address"] != pop[r["id_number"]]["household_address"]
    ]  # fmt: skip
    assert len(retyped) > 1


def test_bulk_assistance_rows_conflict_as_many_times_as_planted(pool: Pool, ring: KeyRing) -> None:
    from gateway.pool import bulk_persons

    counts = bulk_persons(pool, 3000, seed=3, assisted=0.1, conflicting=0.05)
    assert counts["persons"] == 3000 and 200 < counts["assisted"] < 400
    assert counts["conflicting"] > 3
    assert pool.count(AID) == counts["assisted"]
    found = report(finder(pool, ring))
    assert len(found) == counts["conflicting"]
    assert {e["attribute"] for e in found} == {"person.name", "person.birth_date", "person.address"}


def test_a_token_from_before_a_key_rotation_is_refused(tmp_path: Path) -> None:
    from gateway.pool.rotate import rotate

    ring = new_keyring(tmp_path)
    people = persons(6)
    with new_pool(tmp_path, ring) as pool:
        pool.write_batch(POP, people)
        pool.write_batch(AID, [aid_row(p, name="陈凱") for p in people])
        token = finder(pool, ring).page(page_size=1, caller_id="c", today=TODAY).next_page_token
    assert token
    rotate(tmp_path / "pool.db", ring.path, CATALOG, grace_s=0)  # type: ignore[arg-type]
    fresh = new_keyring(tmp_path)
    with Pool(tmp_path / "pool.db", fresh, CATALOG) as pool:
        f = finder(pool, fresh)
        with pytest.raises(GovgwError) as e:
            f.page(page_token=token, caller_id="c", today=TODAY)
        assert e.value.reason == "PAGE_TOKEN_INVALID"
        assert "rotated" in e.value.violations[0].description
        assert len(report(f)) == 6  # started again, the whole report under the new keys
