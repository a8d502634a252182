"""Subject keys (R13): persons by ID number, legal entities by USCC.

Validation uses python-stdnum (GB 11643 MOD 11-2 check digit, GB 32100
check character). Errors name the field and what is wrong, never the value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from stdnum import exceptions as stdnum_exc
from stdnum.cn import ric, uscc

from gateway.errors import invalid

PERSON = "person"
LEGAL_ENTITY = "legal_entity"


def stdnum_valid(validator: Callable[[str], Any], value: str) -> bool:
    """`validator(value)` passes (a stdnum validate or is_valid), any exception meaning
    invalid. stdnum's validators do not keep to ValidationError: ric.is_valid raises
    KeyError for a number whose first six digits name a region without a county in its
    table (e.g. 440909...), which all-digit USCCs hit too. Every call site in the
    gateway goes through here, so a key is never a crash (INTERNAL), only invalid."""
    try:
        return bool(validator(value))
    except Exception:
        return False


def is_person_key(value: str) -> bool:
    """Is this (ID number or USCC, both 18 characters and possibly all digits) a valid
    ID number? Only to guess the kind when none is named."""
    return stdnum_valid(ric.is_valid, value.strip())


# GB/T 2260 province-level codes (the first two digits of an ID number).
PROVINCES = frozenset(
    [
        "11",
        "12",
        "13",
        "14",
        "15",
        "21",
        "22",
        "23",
        "31",
        "32",
        "33",
        "34",
        "35",
        "36",
        "37",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "50",
        "51",
        "52",
        "53",
        "54",
        "61",
        "62",
        "63",
        "64",
        "65",
        "71",
        "81",
        "82",
    ]
)


def normalize_id_number(value: str, field_name: str = "id_number") -> str:
    """Return the compact upper-case ID number or raise INVALID_ARGUMENT.

    Checks length, digits, the MOD 11-2 check digit and the birth date with
    python-stdnum, and the province code. It does not call stdnum's full
    `validate`: its county lookup costs ~200 µs a call (on every request) and
    its table rejects real numbers issued under codes it dates differently,
    while an ID number keeps its county code for life.
    """
    raw = (value or "").strip()
    if not raw:
        raise invalid(field_name, "is required", "ID_NUMBER_MISSING")
    # The separators people type; stdnum's compact() does the same, more slowly.
    number = raw.replace(" ", "").replace("-", "").upper()
    if len(number) != 18:
        raise invalid(field_name, "must be 18 characters", "ID_NUMBER_LENGTH")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise invalid(field_name, "must be 17 digits and a check digit", "ID_NUMBER_FORMAT")
    if not stdnum_valid(lambda n: n[17] == ric.calc_check_digit(n), number):
        raise invalid(field_name, "check digit does not match", "ID_NUMBER_CHECK_DIGIT")
    try:
        # Digits 7-14 are the birth date (GB 11643). stdnum's get_birth_date reads the
        # same digits after cleaning the number again: a third of this check's cost.
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as e:
        raise invalid(field_name, "birth date part is not a date", "ID_NUMBER_COMPONENT") from e
    if born.year < 1870 or born > date.today() or number[:2] not in PROVINCES:
        raise invalid(field_name, "birth date or region part is not valid", "ID_NUMBER_COMPONENT")
    return number


def normalize_uscc(value: str, field_name: str = "uscc") -> str:
    raw = (value or "").strip()
    if not raw:
        raise invalid(field_name, "is required", "USCC_MISSING")
    try:
        return uscc.validate(raw.upper())
    except stdnum_exc.InvalidChecksum as e:
        raise invalid(field_name, "check character does not match", "USCC_CHECK_CHARACTER") from e
    except Exception as e:  # ValidationError, or anything else stdnum raises: invalid
        raise invalid(field_name, "is not a valid unified social credit code", "USCC_FORMAT") from e


def normalize_subject_key(kind: str, value: str, field_name: str) -> str:
    if kind == PERSON:
        return normalize_id_number(value, field_name)
    if kind == LEGAL_ENTITY:
        return normalize_uscc(value, field_name)
    raise ValueError(f"unknown subject kind {kind!r}")


def birth_date_of(id_number: str) -> str:
    """YYYY-MM-DD from a valid 18-digit ID number."""
    return f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
