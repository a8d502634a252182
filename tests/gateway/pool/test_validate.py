"""Row validation: types, subject keys, coherence with the ID number; problems never carry values."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pool import validate_row
from tests.gateway.pool import CATALOG, id_number, licence, person, uscc_code

POP = CATALOG.datasets["population.basic"]
LIC = CATALOG.datasets["licence.business"]
AID = CATALOG.datasets["social_assistance.recipient"]
ENT = CATALOG.datasets["legal_entity.basic"]


def problems(dataset: Any, row: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.field, p.reason) for p in validate_row(dataset, row)[1]]


def aid(**changes: Any) -> dict[str, Any]:
    row = {
        "id_number": id_number(),
        "name": "陈凯",
        "assistance_type": "最低生活保障",
        "start_date": "2024-01-01",
        "end_date": "",
        "monthly_amount": "700.00",
        "region_code": "513221",
    }
    return {**row, **changes}


def test_a_valid_row_is_normalized() -> None:
    row = person(order=12, phone="138-0000 1234")
    key = row["id_number"]
    row["id_number"] = f" {key[:-1]}{key[-1].lower()} "
    row["name"] = " 李欣 "
    norm, found = validate_row(POP, row)
    assert found == []
    assert norm["id_number"] == key and norm["name"] == "李欣" and norm["phone"] == "13800001234"


@pytest.mark.requirement("R13")
def test_an_x_check_digit_is_upper_cased() -> None:
    key = next(
        k for n in range(1000) if (k := id_number(born=date(1986, 4, 12), order=n))[-1] == "X"
    )
    born, gender = date(1986, 4, 12), "男" if int(key[16]) % 2 else "女"
    row = {**person(born=born), "id_number": key.lower(), "gender": gender}
    norm, found = validate_row(POP, row)
    assert found == [] and norm["id_number"] == key


@pytest.mark.parametrize(
    ("phone", "normalized"),
    [
        ("0837 6221234", "0837-6221234"),
        ("010-12345678", "010-12345678"),
        ("(028)87654321", "028-87654321"),
        ("19912345678", "19912345678"),
    ],
)
def test_phone_forms(phone: str, normalized: str) -> None:
    norm, found = validate_row(POP, person(phone=phone))
    assert found == [] and norm["phone"] == normalized


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"id_number": id_number()[:-1] + ("0" if id_number()[-1] != "0" else "1")},
         [("id_number", "ID_NUMBER_CHECK_DIGIT")]),
        ({"id_number": "51322119860412"}, [("id_number", "ID_NUMBER_LENGTH")]),
        ({"birth_date": "1986-02-30"}, [("birth_date", "DATE_INVALID")]),
        ({"birth_date": "1986/04/12"}, [("birth_date", "DATE_FORMAT")]),
        ({"birth_date": "1986-04-13"}, [("birth_date", "BIRTH_DATE_MISMATCH")]),
        ({"gender": "女"}, [("gender", "GENDER_MISMATCH")]),
        ({"gender": "M"}, [("gender", "ENUM_VALUE")]),
        ({"nickname": "凯子"}, [("nickname", "FIELD_UNKNOWN")]),
        ({"name": ""}, [("name", "FIELD_MISSING")]),
        ({"name": None}, [("name", "FIELD_MISSING")]),
        ({"name": 7}, [("name", "FIELD_TYPE")]),
        ({"name": "陈\x00凯"}, [("name", "CONTROL_CHARACTER")]),
        ({"name": "陈\n凯"}, [("name", "LINE_BREAK")]),
        ({"name": "陈" * 201}, [("name", "TOO_LONG")]),
        ({"phone": "1280000123"}, [("phone", "PHONE_FORMAT")]),
        ({"region_code": "51322"}, [("region_code", "REGION_CODE_FORMAT")]),
    ],
)  # fmt: skip
def test_person_problems(change: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(POP, {**person(), **change}) == expected


def test_a_missing_field_is_reported_by_name() -> None:
    row = person()
    del row["household_address"]
    assert problems(POP, row) == [("household_address", "FIELD_MISSING")]


def test_several_problems_are_all_reported_and_coherence_waits_for_valid_types() -> None:
    row = {**person(), "gender": "女", "birth_date": "bad", "extra": "1"}
    # gender is a valid enum value but contradicts the ID number: that check
    # only runs once every field is valid on its own.
    assert problems(POP, row) == [("extra", "FIELD_UNKNOWN"), ("birth_date", "DATE_FORMAT")]


def test_optional_date_decimal_and_date_order() -> None:
    assert problems(AID, aid()) == []
    assert problems(AID, aid(end_date=None, monthly_amount=812.5)) == []
    assert validate_row(AID, aid(monthly_amount=812.5))[0]["monthly_amount"] == "812.5"
    assert problems(AID, aid(monthly_amount="八百")) == [("monthly_amount", "DECIMAL_FORMAT")]
    assert problems(AID, aid(monthly_amount=True)) == [("monthly_amount", "FIELD_TYPE")]
    assert problems(AID, aid(end_date="2023-12-31")) == [("end_date", "DATE_ORDER")]
    assert problems(AID, aid(assistance_type="低保")) == [("assistance_type", "ENUM_VALUE")]


@pytest.mark.requirement("R13")
def test_uscc_rows() -> None:
    code = uscc_code()
    norm, found = validate_row(LIC, licence(code.lower(), "JY1"))
    assert found == [] and norm["uscc"] == code
    bad = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert problems(LIC, licence(bad, "JY1")) == [("uscc", "USCC_CHECK_CHARACTER")]
    assert problems(LIC, {**licence(code, "JY1"), "valid_until": "2020-01-01"}) == [
        ("valid_until", "DATE_ORDER")
    ]
    entity = {
        "uscc": code,
        "name": "汶川羌绣文化有限公司",
        "legal_representative": "王帆",
        "registered_address": "四川省阿坝藏族羌族自治州汶川县威州镇岷江路1号",
        "region_code": "513221",
        "status": "歇业",
        "established_date": "2003-10-28",
    }
    assert problems(ENT, entity) == [("status", "ENUM_VALUE")]


@pytest.mark.requirement("R13")
@settings(max_examples=60, deadline=None)
@given(
    born=st.dates(min_value=date(1940, 1, 1), max_value=date(2015, 12, 31)),
    order=st.integers(0, 999),
)
def test_consistent_persons_pass_and_a_changed_check_digit_fails(born: date, order: int) -> None:
    row = person(born=born, order=order)
    assert problems(POP, row) == []
    key = row["id_number"]
    for wrong in "0123456789X":
        if wrong != key[-1]:
            changed = {**row, "id_number": key[:-1] + wrong}
            assert problems(POP, changed) == [("id_number", "ID_NUMBER_CHECK_DIGIT")]
            break


VALUES = st.text(
    st.characters(whitelist_categories=("Lo", "Nd"), max_codepoint=0x9FFF), min_size=4, max_size=20
)


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(POP.field_names), value=VALUES, extra=VALUES)
def test_problems_name_fields_never_values(field: str, value: str, extra: str) -> None:
    row = {**person(), field: value, "x_" + extra[:3]: extra}
    for p in validate_row(POP, row)[1]:
        assert value not in p.description and value not in p.field
        assert extra not in p.description


def test_only_the_field_the_id_number_encodes_must_agree_with_it() -> None:
    # population.basic.birth_date is derived from the ID number (GB 11643);
    # a civil-affairs register's own birth date may disagree, and is then
    # reported as a conflict (R16) rather than rejected at ingest.
    assert CATALOG.datasets["population.basic"].field("birth_date").derived_from_subject  # type: ignore[union-attr]
    row = aid(birth_date="1970-01-01", household_address="汶川县威州镇羌锋村2组8号")
    assert problems(AID, row) == []
    assert problems(AID, aid(birth_date="1970-02-30")) == [("birth_date", "DATE_INVALID")]
