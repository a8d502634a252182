"""Input checks shared by the RPCs. Each raises INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from gateway.catalog import Catalog, Dataset
from gateway.errors import FieldViolation, GovgwError, invalid, invalid_many

T = TypeVar("T")

PURPOSE_MAX = 200
# A purpose is free text that ends up in the audit trail; it must not carry
# the personal data the audit is careful never to hold.
_ID_LIKE = re.compile(r"(?<!\d)\d{15}(?:\d{2}[\dXx])?(?!\d)")
_PHONE_LIKE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def purpose(value: str) -> str:
    p = unicodedata.normalize("NFKC", value or "").strip()
    if not p:
        raise invalid("purpose", "is required: say why the data is needed", "PURPOSE_MISSING")
    if len(p) > PURPOSE_MAX:
        raise invalid("purpose", f"is longer than {PURPOSE_MAX} characters", "PURPOSE_TOO_LONG")
    if any(unicodedata.category(c) == "Cc" for c in p):
        raise invalid("purpose", "contains control characters", "PURPOSE_MALFORMED")
    if _ID_LIKE.search(p) or _PHONE_LIKE.search(p):
        raise invalid(
            "purpose",
            "must not contain an ID number or phone number",
            "PURPOSE_CONTAINS_PERSONAL_DATA",
        )
    return p


def dataset(catalog: Catalog, name: str, field_name: str = "dataset") -> Dataset:
    if not name:
        raise invalid(field_name, "is required", "DATASET_MISSING")
    ds = catalog.get(name)
    if ds is None:
        raise invalid(field_name, "names no dataset in the catalog", "UNKNOWN_DATASET")
    return ds


def field_names(ds: Dataset, names: Sequence[str], field_name: str = "fields") -> tuple[str, ...]:
    violations = []
    seen: list[str] = []
    for i, n in enumerate(names):
        if ds.field(n) is None:
            violations.append(
                FieldViolation(
                    f"{field_name}[{i}]", f"is not a field of {ds.name}", "UNKNOWN_FIELD"
                )
            )
        elif n in seen:
            violations.append(
                FieldViolation(f"{field_name}[{i}]", "is repeated", "DUPLICATE_FIELD")
            )
        else:
            seen.append(n)
    if violations:
        raise invalid_many(violations)
    return tuple(seen)


def period(
    request: Any, now: datetime, default: timedelta, longest: timedelta, longest_text: str
) -> tuple[datetime, datetime]:
    """A report's [since, until) from a request's optional Timestamps `since` and
    `until`: until defaults to now, since to `default` before until."""
    until = request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else now
    since = request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else until - default
    if since >= until:
        raise invalid("since", "must be before until", "PERIOD_INVALID")
    if until - since > longest:
        raise invalid("since", f"the period is at most {longest_text}", "PERIOD_TOO_LONG")
    return since, until


class Violations:
    """Collects every bad field of a request, so the caller fixes them all at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def check(self, fn: Callable[..., T], *args: Any) -> T | None:
        try:
            return fn(*args)
        except GovgwError as e:
            if not e.violations:
                raise
            self.items.extend(e.violations)
            return None

    def add(self, field_name: str, description: str, reason: str) -> None:
        self.items.append(FieldViolation(field_name, description, reason))

    def raise_if_any(self) -> None:
        if self.items:
            raise invalid_many(self.items)
