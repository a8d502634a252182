"""The data subject's access to their own data (R8; Aba 2024 art. 20, 22; Aba 2021 art. 28).

A subject cannot sensibly ask for a correction (校核) without seeing what the pool
holds about them: this reads, for every dataset of the subject's kind (persons:
datasets keyed by ID number; entities: by USCC), the subject's record(s) through the
Pool API, and says per field whether a correction of it is pending
(`gateway.access.disputes`) so the page can offer "file a correction" beside each
value.

What is shown, and why:
- Values are the subject's own: shown as the pool holds them, without masking. The
  plans and treatments that bind third parties (share / open) do not apply to the
  subject reading their own record.
- Except fields of sensitivity `secret`: no route releases them (policies/datasets.rego
  never puts one in a plan, the policy check refuses a plan that does, an emergency
  cannot name one), and neither does this one. They are listed, withheld, with the
  reason, so the subject knows the pool holds a value there.
- Withdrawn records (撤回, `gateway.access.withdrawals`) are still shown to their own
  subject: a withdrawal closes the open (public) route to the record, it does not take
  the record out of the pool, and the subject keeps the right to see and correct what
  is held. So this reads the pool directly (`Pool.read`), not through
  `gateway.release.read`, which hides withdrawn records from public callers (the
  citizen's app is one); the dataset is marked `withdrawn_from_open_data` instead.
- Region constraints do not apply either: they bound what an agency of one county may
  see of others, not what a subject sees of themselves.

Nothing here is logged or audited but dataset names and counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gateway import validation
from gateway.access.subject_tokens import SubjectIdentity
from gateway.catalog import Catalog, Dataset
from gateway.pool import Pool

SECRET = "secret"
WITHHELD_SECRET = (
    "secret field (catalog sensitivity `secret`): released by no route, this one included"
)


@dataclass(frozen=True)
class FieldView:
    name: str
    title: str
    value: str  # "" when withheld
    withheld_reason: str = ""
    pending_since: str = ""  # filing date of a pending correction of the field, "" if none


@dataclass(frozen=True)
class DatasetView:
    dataset: Dataset
    version: str
    imported_at: str  # RFC 3339, "" when never imported
    records: list[list[FieldView]]
    withdrawn: bool


def datasets_of(catalog: Catalog, subject: SubjectIdentity, only: str = "") -> list[Dataset]:
    """The datasets the subject's records may be in, in catalog order; `only` narrows to
    one (INVALID_ARGUMENT UNKNOWN_DATASET, or DATASET_SUBJECT_KIND for another kind's)."""
    if not only:
        return [ds for ds in catalog.datasets.values() if ds.subject_kind == subject.kind]
    v = validation.Violations()
    ds = v.check(validation.dataset, catalog, only)
    if ds is not None and ds.subject_kind != subject.kind:
        v.add(
            "dataset",
            f"holds records of {ds.subject_kind} subjects, not of this subject",
            "DATASET_SUBJECT_KIND",
        )
    v.raise_if_any()
    assert ds is not None
    return [ds]


def field_views(ds: Dataset, row: Mapping[str, str], pending: Mapping[str, str]) -> list[FieldView]:
    """One record, every catalog field in catalog order."""
    views = []
    for f in ds.fields:
        secret = f.sensitivity == SECRET
        views.append(
            FieldView(
                name=f.name,
                title=f.title,
                value="" if secret else str(row.get(f.name) or ""),
                withheld_reason=WITHHELD_SECRET if secret else "",
                pending_since=pending.get(f.name, ""),
            )
        )
    return views


def my_records(
    pool: Pool,
    datasets: Sequence[Dataset],
    subject: SubjectIdentity,
    *,
    disputed: Callable[[str, str], Mapping[str, str]] | None,
    withdrawn: Callable[[str, str], bool] | None,
) -> list[DatasetView]:
    """The subject's records in each dataset that holds one (others are left out)."""
    found = []
    # One state of the pool: the records and the version they are said to come from
    # are read together, never across an import running meanwhile.
    with pool.snapshot():
        for ds in datasets:
            rows = pool.read(ds.name, subject.key)
            if not rows:
                continue
            pending = disputed(ds.name, subject.key) if disputed is not None else {}
            history = pool.versions(ds.name)
            found.append(
                DatasetView(
                    dataset=ds,
                    version=str(history[0]["version"]) if history else "",
                    imported_at=str(history[0]["imported_at"]) if history else "",
                    records=[field_views(ds, row, pending) for row in rows],
                    withdrawn=bool(withdrawn and withdrawn(ds.name, subject.key)),
                )
            )
    return found
