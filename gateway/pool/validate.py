"""Row validation for ingestion (归集): types from the catalog, subject keys, coherence.

A problem names the field and what is wrong with it, never the value: reports
of rejected rows travel to operators and logs, and a rejected row is as
personal as an accepted one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway.catalog import Dataset, Field
from gateway.errors import FieldViolation, GovgwError, invalid_many
from gateway.subjects import birth_date_of, normalize_id_number, normalize_uscc

# Datasets that hold exactly one row per subject; a batch naming a subject
# twice is ambiguous (which row is true?) and is rejected. The others
# (licences, credit records) legitimately hold several rows per subject.
SINGLE_ROW_DATASETS = frozenset(
    {"population.basic", "legal_entity.basic", "social_assistance.recipient"}
)

# Pairs of date fields where the second may not come before the first.
DATE_ORDER = (("start_date", "end_date"), ("issued_date", "valid_until"))

MAX_LENGTH = {"string": 200, "address": 300, "text": 4000}
MAX_FIELD_NAME = 64

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_REGION_CODE = re.compile(r"[1-9]\d{5}")
_DECIMAL = re.compile(r"-?\d{1,15}(\.\d{1,4})?")
_MOBILE = re.compile(r"1[3-9]\d{9}")
# Area codes: 010 and 02x have three digits, all others four (0xxx).
_LANDLINE = re.compile(r"(0(?:10|2\d)|0[3-9]\d{2})(\d{7,8})")
# Control characters other than tab and newline have no place in any field.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n\t]")


@dataclass(frozen=True)
class Problem:
    field: str
    reason: str  # UPPER_SNAKE, stable: tests and operators match on it
    description: str  # what is wrong, in words; never contains the value


class _Bad(Exception):
    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


def _from_govgw(e: GovgwError) -> _Bad:
    v = e.violations[0]
    return _Bad(v.reason, v.description)


def _text(value: str, base: str) -> str:
    if _CONTROL.search(value):
        raise _Bad("CONTROL_CHARACTER", "contains a control character")
    if base != "text" and _LINE_BREAK.search(value):
        raise _Bad("LINE_BREAK", "contains a line break or tab")
    if len(value) > MAX_LENGTH[base]:
        raise _Bad("TOO_LONG", f"is longer than {MAX_LENGTH[base]} characters")
    return value


def _phone(value: str) -> str:
    compact = re.sub(r"[\s\-()]", "", value)
    if _MOBILE.fullmatch(compact):
        return compact
    m = _LANDLINE.fullmatch(compact)
    if m:
        return f"{m[1]}-{m[2]}"
    raise _Bad(
        "PHONE_FORMAT", "must be a mobile number (1[3-9] and 9 digits) or a landline with area code"
    )


def _date(value: str) -> str:
    if not _DATE.fullmatch(value):
        raise _Bad("DATE_FORMAT", "must be a date as YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError as e:
        raise _Bad("DATE_INVALID", "is not a calendar date") from e
    return value


def _check(f: Field, value: str) -> str:
    """Normalized value of one non-empty field, or _Bad."""
    base = f.base_type
    try:
        if base == "id_number":
            return normalize_id_number(value, f.name)
        if base == "uscc":
            return normalize_uscc(value, f.name)
    except GovgwError as e:
        raise _from_govgw(e) from None
    if base == "date":
        return _date(value)
    if base == "phone":
        return _phone(value)
    if base == "region_code":
        if not _REGION_CODE.fullmatch(value):
            raise _Bad("REGION_CODE_FORMAT", "must be a 6-digit administrative division code")
        return value
    if base == "decimal":
        if not _DECIMAL.fullmatch(value):
            raise _Bad("DECIMAL_FORMAT", "must be a decimal number such as 780.50")
        return value
    if base.startswith("enum:"):
        options = base.removeprefix("enum:").split(",")
        if value not in options:
            raise _Bad("ENUM_VALUE", f"must be one of {', '.join(options)}")
        return value
    if base in MAX_LENGTH:
        return _text(value, base)
    raise ValueError(f"field {f.name} has unknown type {f.type!r} in the catalog")


def _as_text(f: Field, raw: Any) -> str:
    """The raw value as a stripped string; numbers only where a number is meant."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if f.base_type in ("decimal", "region_code"):
            return str(raw)
        raise _Bad("FIELD_TYPE", "must be a string")
    raise _Bad("FIELD_TYPE", "must be a string")


def _coherence(ds: Dataset, row: dict[str, str]) -> list[Problem]:
    """Cross-field checks on an otherwise valid row."""
    problems = []
    if ds.subject_kind == "person" and ds.subject_field in row:
        id_number = row[ds.subject_field]
        # Only where the catalog says the field is the one the key encodes: a
        # provider's own birth date that disagrees with the ID number is kept
        # and shows in the conflicts report (R16) rather than lost at ingest.
        for f in ds.fields:
            if not (f.derived_from_subject and f.base_type == "date" and row.get(f.name)):
                continue
            if row[f.name] != birth_date_of(id_number):
                problems.append(
                    Problem(
                        f.name,
                        "BIRTH_DATE_MISMATCH",
                        f"does not agree with the birth date encoded in {ds.subject_field}",
                    )
                )
        if row.get("gender"):
            encoded = "男" if int(id_number[16]) % 2 == 1 else "女"
            if row["gender"] != encoded:
                problems.append(
                    Problem(
                        "gender",
                        "GENDER_MISMATCH",
                        f"does not agree with the sex digit (17th) of {ds.subject_field}",
                    )
                )
    for first, then in DATE_ORDER:
        if row.get(first) and row.get(then) and row[then] < row[first]:
            problems.append(Problem(then, "DATE_ORDER", f"is before {first}"))
    return problems


def validate_row(dataset: Dataset, row: Mapping[str, Any]) -> tuple[dict[str, str], list[Problem]]:
    """Check one row against its dataset; returns (normalized row, problems).

    The normalized row holds every catalog field (optional empty ones as "")
    and is only meaningful when problems is empty.
    """
    problems: list[Problem] = []
    known = set(dataset.field_names)
    for name in row:
        if name not in known:
            label = str(name)[:MAX_FIELD_NAME]
            problems.append(
                Problem(label, "FIELD_UNKNOWN", f"is not a field of dataset {dataset.name}")
            )
    out: dict[str, str] = {}
    for f in dataset.fields:
        try:
            value = _as_text(f, row.get(f.name))
            if not value:
                if not f.optional:
                    raise _Bad("FIELD_MISSING", "is required")
                out[f.name] = ""
                continue
            out[f.name] = _check(f, value)
        except _Bad as bad:
            problems.append(Problem(f.name, bad.reason, bad.description))
    if not problems:
        problems = _coherence(dataset, out)
    return out, problems


def validate_batch(ds: Dataset, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The normalized rows of a batch written through the API (Pool.write_batch), or
    INVALID_ARGUMENT naming every bad row and field (never a value)."""
    normalized: list[dict[str, str]] = []
    violations: list[FieldViolation] = []
    first_line: dict[str, int] = {}
    for i, row in enumerate(rows):
        norm, problems = validate_row(ds, row)
        violations.extend(
            FieldViolation(f"rows[{i}].{p.field}", p.description, p.reason) for p in problems
        )
        if problems:
            continue
        key = norm[ds.subject_field]
        if ds.name in SINGLE_ROW_DATASETS and key in first_line:
            violations.append(
                FieldViolation(
                    f"rows[{i}].{ds.subject_field}",
                    f"same subject as rows[{first_line[key]}]; the dataset has one row per subject",
                    "DUPLICATE_SUBJECT",
                )
            )
            continue
        first_line.setdefault(key, i)
        normalized.append(norm)
    if violations:
        raise invalid_many(violations)
    return normalized
