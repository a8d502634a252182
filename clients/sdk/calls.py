"""The SDK's methods as table rows (clients.sdk.call.Call): verification, lookup,
catalog, receipts, applications and grants, usage (emergencies and conflicts:
calls_admin; subject rights: calls_subjects; policies: calls_policy).

Each `_name(...)` builder has the signature of the client method `name`;
each converter turns the answer into the typed result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from govgw.v1 import (
    access_pb2,
    catalog_pb2,
    common_pb2,
    lookup_pb2,
    receipt_pb2,
    usage_pb2,
    verification_pb2,
)
from stdnum.cn import ric

from clients.sdk import types as t
from clients.sdk.call import Call, Ctx, Prepared
from clients.sdk.convert import from_proto
from clients.sdk.results import (
    AttributesResult,
    DatasetList,
    Disputed,
    FieldValue,
    IdentityResult,
    Keyset,
    Listing,
    LookupResult,
    Provenance,
)

PERSON, LEGAL_ENTITY = "person", "legal_entity"
_KINDS = {
    PERSON: common_pb2.SUBJECT_KIND_PERSON,
    LEGAL_ENTITY: common_pb2.SUBJECT_KIND_LEGAL_ENTITY,
}


def guess_kind(subject_key: str) -> str:
    """Both keys are 18 characters and may be all digits; the check digit tells them apart.
    stdnum's ric.is_valid raises KeyError (not False) on some all-digit keys, e.g. USCCs
    starting 440909 (a region without a county in its table): any exception means "not
    an ID number", so the key is sent as a USCC and the gateway answers precisely."""
    try:
        person = ric.is_valid(subject_key.strip())
    except Exception:
        person = False
    return PERSON if person else LEGAL_ENTITY


def predicate_label(name: str, args: Sequence[str]) -> str:
    return f"{name}({','.join(args)})" if args else name


def _disputed(items: Sequence[common_pb2.DisputedField]) -> tuple[Disputed, ...]:
    return tuple(dict.fromkeys(Disputed(d.dataset, d.field, d.filed_on) for d in items))


def _ts(msg: Any, name: str, value: datetime | None) -> None:
    if value is not None:
        getattr(msg, name).FromDatetime(value)


# -- generic converters ------------------------------------------------------------------
def answer(r: Any, ctx: Ctx) -> Any:
    """The whole answer, typed (its generated dataclass), with the call's request id."""
    return from_proto(r, request_id=ctx.request_id)


def entity(name: str, result: type) -> Any:
    """The answer's one entity (`apply` -> the Application), with the call's request id."""
    return lambda r, ctx: from_proto(getattr(r, name), result, request_id=ctx.request_id)


def listing(name: str) -> Any:
    """The answer's one list, as a Listing (pages concatenated when paged)."""

    def convert(r: Any, ctx: Ctx) -> Listing[Any]:
        pages = r if isinstance(r, list) else [r]
        items = tuple(from_proto(x) for page in pages for x in getattr(page, name))
        return Listing(items, ctx.request_id)

    return convert


# -- verification ------------------------------------------------------------------------
def _verify_identity(name: str, id_number: str, *, purpose: str) -> Prepared:
    return Prepared(
        verification_pb2.VerifyIdentityRequest(name=name, id_number=id_number, purpose=purpose)
    )


def _identity(r: Any, ctx: Ctx) -> IdentityResult:
    return IdentityResult(
        t.VerificationResult(r.result) if r.result in (1, 2) else t.VerificationResult(0),
        ctx.receipt(r),
        r.request_id or ctx.request_id,
        r.policy_version,
        _disputed(r.disputed_fields),
    )


def _verify_attributes(
    subject_key: str,
    predicates: Sequence[tuple[str, Sequence[str]]] | Mapping[str, Sequence[str]],
    *,
    purpose: str,
    kind: str | None = None,
) -> Prepared:
    kind = kind or guess_kind(subject_key)
    items = list(predicates.items()) if isinstance(predicates, Mapping) else list(predicates)
    return Prepared(
        verification_pb2.VerifyAttributesRequest(
            subject=common_pb2.Subject(kind=_KINDS.get(kind, 0), key=subject_key),
            predicates=[
                verification_pb2.Predicate(name=n, args=[str(a) for a in args]) for n, args in items
            ],
            purpose=purpose,
        )
    )


def _attributes(r: Any, ctx: Ctx) -> AttributesResult:
    return AttributesResult(
        {predicate_label(x.predicate.name, x.predicate.args): x.value for x in r.results},
        ctx.receipt(r),
        r.request_id or ctx.request_id,
        r.policy_version,
        _disputed(r.disputed_fields),
    )


VERIFY_IDENTITY = Call("verification", "VerifyIdentity", _verify_identity, _identity)
VERIFY_ATTRIBUTES = Call("verification", "VerifyAttributes", _verify_attributes, _attributes)


# -- lookup ------------------------------------------------------------------------------
def _lookup(
    dataset: str, subject_key: str, fields: Sequence[str] = (), *, purpose: str
) -> Prepared:
    return Prepared(
        lookup_pb2.LookupRequest(
            dataset=dataset, subject_key=subject_key, fields=list(fields), purpose=purpose
        )
    )


def _batch_lookup(
    dataset: str, subject_keys: Sequence[str], fields: Sequence[str] = (), *, purpose: str
) -> Prepared:
    return Prepared(
        lookup_pb2.BatchLookupRequest(
            dataset=dataset, subject_keys=list(subject_keys), fields=list(fields), purpose=purpose
        )
    )


def _looked_up(r: Any, ctx: Ctx) -> LookupResult:
    p = r.provenance
    return LookupResult(
        [{f.name: FieldValue(f.value, f.treatment) for f in rec.fields} for rec in r.records],
        Provenance(p.source_department, p.dataset, p.dataset_version, p.retrieved_at.ToDatetime()),
        r.request_id or ctx.request_id,
        getattr(r, "policy_version", ""),
        index=getattr(r, "index", 0),
        found=getattr(r, "found", True),
        disputed_fields=_disputed([d for rec in r.records for d in rec.disputed_fields]),
    )


LOOKUP = Call("lookup", "Lookup", _lookup, _looked_up)
BATCH_LOOKUP = Call("lookup", "BatchLookup", _batch_lookup, _looked_up, stream=True)


# -- catalog -----------------------------------------------------------------------------
def _list_datasets(*, purpose: str = "") -> Prepared:
    """Every dataset, all from one policy version's catalog: should a policy be
    activated between two pages, the listing starts again (a few times at most)."""
    return Prepared(catalog_pb2.ListDatasetsRequest(purpose=purpose))


def _datasets(pages: list[Any], ctx: Ctx) -> DatasetList:
    items = tuple(from_proto(d) for page in pages for d in page.datasets)
    return DatasetList(items, ctx.request_id, pages[-1].policy_version if pages else "")


def _get_dataset(name: str, *, purpose: str = "") -> Prepared:
    return Prepared(catalog_pb2.GetDatasetRequest(name=name, purpose=purpose))


LIST_DATASETS = Call(
    "catalog",
    "ListDatasets",
    _list_datasets,
    _datasets,
    paged=True,
    restart=lambda first, page: page.policy_version != first.policy_version,
)
GET_DATASET = Call("catalog", "GetDataset", _get_dataset, entity("dataset", t.DatasetResult))


# -- receipts ----------------------------------------------------------------------------
def _receipt_keys() -> Prepared:
    """The gateway's receipt keys; `.document()` is the keyset file `receipt verify` reads."""
    return Prepared(receipt_pb2.ListReceiptKeysRequest())


RECEIPT_KEYS = Call(
    "receipts",
    "ListReceiptKeys",
    _receipt_keys,
    lambda r, ctx: Keyset(tuple(from_proto(k) for k in r.keys), ctx.request_id),
)


# -- applications and grants (AccessService) ---------------------------------------------
def _apply(
    dataset: str,
    fields: Sequence[str],
    *,
    purpose: str,
    scenario: str,
    duration_days: int,
    use: t.ApplicationUse | str = "",
    public_interest: bool = False,
    competitive_authorization: str = "",
    security_commitment_accepted: bool = False,
    use_agreement_accepted: bool = False,
) -> Prepared:
    """Apply for conditional share (agency) or conditional open (public) access."""
    return Prepared(
        access_pb2.ApplyRequest(
            dataset=dataset,
            fields=list(fields),
            purpose=purpose,
            scenario=scenario,
            duration_days=duration_days,
            use=enum_value(t.ApplicationUse, use, "use"),
            public_interest=public_interest,
            competitive_authorization=competitive_authorization,
            security_commitment_accepted=security_commitment_accepted,
            use_agreement_accepted=use_agreement_accepted,
        )
    )


def enum_value(cls: Any, value: Any, what: str, allowed: Sequence[str] = ()) -> int:
    """An enum argument given as the enum, its name in any case, or "" (unspecified)."""
    if isinstance(value, cls):
        return int(value.value)
    if not value:
        return 0
    names = allowed or [m.name.lower() for m in cls if m.value]
    if str(value).lower() not in names:
        raise ValueError(f"{what}: one of {', '.join(names)}")
    return int(cls[str(value).upper()].value)


def _list_applications(
    *, status: str = "", dataset: str = "", overdue_only: bool = False
) -> Prepared:
    return Prepared(
        access_pb2.ListApplicationsRequest(
            status=status, dataset=dataset, overdue_only=overdue_only
        )
    )


def _get_application(application_id: str) -> Prepared:
    return Prepared(access_pb2.GetApplicationRequest(application_id=application_id))


def _decide_application(
    application_id: str,
    *,
    approve: bool,
    fields: Sequence[str] = (),
    reason: str = "",
    legal_basis: str = "",
) -> Prepared:
    return Prepared(
        access_pb2.DecideApplicationRequest(
            application_id=application_id,
            approve=approve,
            fields=list(fields),
            reason=reason,
            legal_basis=legal_basis,
        )
    )


def _change_grant(grant_id: str, status: t.GrantStatus | str, *, reason: str) -> Prepared:
    """status: active (reinstate), suspended (misuse) or revoked (end)."""
    value = enum_value(t.GrantStatus, status, "status", ("active", "suspended", "revoked"))
    if not value:
        raise ValueError("status: one of active, suspended, revoked")
    return Prepared(access_pb2.ChangeGrantRequest(grant_id=grant_id, status=value, reason=reason))


def _usage_report(
    dataset: str, *, since: datetime | None = None, until: datetime | None = None
) -> Prepared:
    """Calls on a dataset by caller, department, purpose, action and outcome (providers)."""
    req = usage_pb2.GetUsageReportRequest(dataset=dataset)
    _ts(req, "since", since)
    _ts(req, "until", until)
    return Prepared(req)


APPLY = Call("access", "Apply", _apply, entity("application", t.ApplicationResult))
LIST_APPLICATIONS = Call("access", "ListApplications", _list_applications, listing("applications"))
GET_APPLICATION = Call(
    "access", "GetApplication", _get_application, entity("application", t.ApplicationResult)
)
DECIDE_APPLICATION = Call("access", "DecideApplication", _decide_application, answer)
CHANGE_GRANT = Call("access", "ChangeGrant", _change_grant, entity("grant", t.GrantResult))
SWEEP_UNUSED_GRANTS = Call(
    "access",
    "SweepUnusedGrants",
    lambda: Prepared(access_pb2.SweepUnusedGrantsRequest()),
    listing("revoked"),
)
USAGE_REPORT = Call("usage", "GetUsageReport", _usage_report, answer)
