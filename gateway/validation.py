"""Input checks shared by the RPCs. Each raises INVALID_ARGUMENT naming the field."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from gateway import purposes
from gateway.catalog import Catalog, Dataset
from gateway.errors import FieldViolation, GovgwError, invalid, invalid_many

T = TypeVar("T")

PURPOSE_MAX = purposes.MAX_LENGTH


def purpose(value: str) -> str:
    """The stored form of a purpose (gateway.purposes): `code[ case-ref][: text]`, the
    text desensitized; what the call records in the audit trail, index and reports.

    INVALID_ARGUMENT reasons: PURPOSE_MISSING, PURPOSE_TOO_LONG, PURPOSE_MALFORMED
    (control characters, CR/LF), PURPOSE_CONTAINS_PERSONAL_DATA (an ID or phone number
    in any separator style: refused, never stored)."""
    try:
        return purposes.resolve(value)
    except purposes.PurposeError as e:
        raise invalid("purpose", e.description, e.reason) from None


def purpose_code(stored: str) -> str:
    """The registered code of a stored purpose (what a policy or limit keys on)."""
    return purposes.code(stored)


def free_text(value: str) -> str:
    """Recorded free text that is not a purpose (a reason, title, scenario): the purpose
    checks and desensitization, no code. Errors are named as for `purpose`; callers
    rename the field and reason (PURPOSE_* -> REASON_*, SCENARIO_*, ...): `recorded_text`
    does that for every field a store, an audit record or a report keeps."""
    try:
        return purposes.clean_text(value)
    except purposes.PurposeError as e:
        raise invalid("purpose", e.description, e.reason) from None


def recorded_text(value: str, field_name: str, what: str = "", *, required: bool = True) -> str:
    """THE check for text people type that the gateway keeps (a reason, a note, a
    scenario, a title, a legal basis): required (unless not), at most 200 characters,
    one line, and free of personal data. A raw ID or phone number in any separator
    style is refused, never stored: INVALID_ARGUMENT on `field_name` with
    <FIELD>_CONTAINS_PERSONAL_DATA (REASON_CONTAINS_PERSONAL_DATA on `reason`); names
    and other entities are masked, one `*` each. A `purpose` field is resolved to its
    stored form (a registered code). `what` says what to write when it is missing.
    Returns "" for an empty optional field."""
    check = purpose if field_name.rsplit(".", 1)[-1] == "purpose" else free_text
    try:
        return check(value)
    except GovgwError as e:
        v = e.violations[0]
        if v.reason == "PURPOSE_MISSING" and not required:
            return ""
        what = what or ("say why the data is needed" if check is purpose else "say why")
        description = v.description.replace("say why the data is needed", what)
        prefix = field_name.rsplit(".", 1)[-1].upper()
        raise invalid(field_name, description, v.reason.replace("PURPOSE", prefix, 1)) from None


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
    if request.HasField("since"):
        since = request.since.ToDatetime(tzinfo=UTC)
    elif until - datetime.min.replace(tzinfo=UTC) < default:  # no time before year 1
        raise invalid("until", "leaves no default period before it", "PERIOD_INVALID")
    else:
        since = until - default
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
