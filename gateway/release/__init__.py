"""Release: what leaves the pool for one call, decided in one place.

Every read an RPC makes of a subject's records comes through here, so the
rules that bound a read hold by construction, not by each RPC's care:

1. withdrawal (撤回, R9): for a public caller (the open route) a withdrawn
   record is not read at all;
2. row constraints: a plan's `region_prefix` hides records outside the
   caller's region, for the actions the policy bounds by region (the
   policy's `govgw.regions.bounds` says which);
3. the field plan and masking: only fields the plan names leave, each
   through the operator the plan names for it (R7);
4. existence: judged in the subject's base dataset under the same row
   constraint, so a subject outside it is indistinguishable from one the
   pool does not hold -- whatever an RPC builds from "no rows" (Lookup's
   SUBJECT_NOT_FOUND, a batch item not found, NO_MATCH, a false predicate)
   is exactly the absent subject's answer;
5. disputed fields (校核 pending, R8): named only for a record that is
   released.

The subject reading their own records (GetMyRecords, R8) is the one read with
other rules -- their own values unmasked, secret fields withheld, withdrawal and
region constraints not applying to themselves -- and lives beside this, in
`gateway.release.own`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from govgw.v1 import common_pb2

from gateway.access.disputes import disputed
from gateway.call import Exec
from gateway.catalog import Dataset
from gateway.errors import GovgwError, denied, not_found
from gateway.pipeline import Parts
from gateway.plan import Plan
from gateway.predicates import Row
from gateway.subjects import LEGAL_ENTITY, PERSON
from masking import MaskingContext, apply_treatment

# Existence of a subject is judged in its base dataset, not in the dataset
# that answers a predicate (no social-assistance row does not mean no person).
BASE_DATASET = {PERSON: "population.basic", LEGAL_ENTITY: "legal_entity.basic"}


@dataclass(frozen=True)
class Field:
    """One released value: already masked by the operator the plan names."""

    name: str
    value: str
    operator: str


def read(parts: Parts, ex: Exec[object], dataset: str, subject_key: str) -> list[Row]:
    """The subject's rows in one dataset that this call may see at all (steps 1 and 2)."""
    withdrawn = parts.withdrawn
    if ex.caller.kind == "public" and withdrawn is not None and withdrawn(dataset, subject_key):
        return []
    return _visible(parts.pool.read(dataset, subject_key), _prefix(ex, dataset))


def read_many(
    parts: Parts, ex: Exec[object], dataset: str, subject_keys: Sequence[str]
) -> dict[str, list[Row]]:
    """`read` of several subjects in one pool query (the batch path): subject key ->
    the rows this call may see, each subject filtered exactly as `read` filters it."""
    withdrawn = parts.withdrawn
    if ex.caller.kind == "public" and withdrawn is not None:
        keys = [k for k in subject_keys if not withdrawn(dataset, k)]
    else:
        keys = list(subject_keys)
    found = parts.pool.read_many(dataset, keys) if keys else {}
    prefix = _prefix(ex, dataset)
    return {k: _visible(found.get(k, []), prefix) for k in subject_keys}


def exists(
    parts: Parts,
    ex: Exec[object],
    kind: str,
    subject_key: str,
    read_already: Mapping[str, Sequence[Row]] | None = None,
) -> bool:
    """Whether the subject is in the pool as far as this caller may know (step 4);
    the base dataset's rows are not read twice if the call has read them already."""
    base = BASE_DATASET[kind]
    if read_already is not None and base in read_already:
        return bool(read_already[base])
    return bool(read(parts, ex, base, subject_key))


def fields(ds: Dataset, plan: Plan, requested: Sequence[str]) -> list[str]:
    """The fields that leave: those asked for (or all) that the plan names, in catalog order."""
    if requested:
        refused = [f for f in requested if f not in plan.fields]
        if refused:
            raise denied(
                "FIELD_NOT_ALLOWED",
                f"not released to this caller for this purpose: {', '.join(refused)}",
                fields=",".join(refused),
                dataset=ds.name,
            )
        return [f for f in ds.field_names if f in requested]
    return [f for f in ds.field_names if f in plan.fields]


def masked(
    parts: Parts,
    ex: Exec[object],
    rows: Sequence[Mapping[str, str]],
    names: Sequence[str],
    plan: Plan,
) -> list[list[Field]]:
    """Each row's released fields through the plan's operators (step 3)."""
    keyring = parts.keyring
    ctx = MaskingContext(ex.caller.id, keyring.pseudonym_key, ex.today, suite=keyring.suite)
    return [
        [
            Field(f, apply_treatment(plan.fields[f], row.get(f), ctx), plan.fields[f].operator)
            for f in names
        ]
        for row in rows
    ]


def disputed_fields(
    parts: Parts,
    dataset: str,
    subject_key: str,
    used: Iterable[str],
    lookup: Callable[[str, str], Mapping[str, str]] | None = None,
) -> list[common_pb2.DisputedField]:
    """The fields among `used` (what the plan let the call use) that are under
    correction for this subject (step 5), with their filing dates. `lookup` replaces
    `parts.disputed` where a call holds the pending corrections already (a batch)."""
    return [
        common_pb2.DisputedField(dataset=d, field=f, filed_on=on)
        for d, f, on in disputed(lookup or parts.disputed, dataset, subject_key, used)
    ]


def absent(ex: Exec[object], dataset: str) -> GovgwError:
    """SUBJECT_NOT_FOUND for a read that found nothing the caller may see. Where a row
    constraint bounds the caller, it says so: a record outside the caller's region is
    answered exactly as no record (existence is not revealed), and the caller should
    know its answer covers only that part of the pool."""
    prefix = _prefix(ex, dataset)
    if not prefix:
        return not_found("SUBJECT_NOT_FOUND", f"no record in {dataset} for this subject")
    return not_found(
        "SUBJECT_NOT_FOUND",
        f"no record in {dataset} for this subject within region {prefix}, the part of the"
        " pool this caller may see: a subject outside it is answered the same as one not"
        " in the pool",
        dataset=dataset,
        region_prefix=prefix,
    )


def _prefix(ex: Exec[object], dataset: str) -> str:
    """The row constraint for a dataset: its own plan's, or -- for a dataset the call
    reads only to judge existence -- the strictest of the call's plans."""
    plan = ex.plans.get(dataset)
    if plan is not None:
        return plan.region_prefix
    prefixes = [p.region_prefix for p in ex.plans.values() if p.region_prefix]
    return max(prefixes, key=len) if prefixes else ""


def _visible(rows: Sequence[Row], prefix: str) -> list[Row]:
    if not prefix:
        return list(rows)
    return [r for r in rows if r.get("region_code", "").startswith(prefix)]
