"""The Python SDK: typed calls to the gateway, rich errors, offline receipt checks.

from clients.sdk import GovgwClient
with GovgwClient("127.0.0.1:50051", api_key=KEY) as gw:
    r = gw.verify_identity("张三", "11010519491231002X", purpose="户籍业务办理")
    r.matched, r.receipt          # receipt verified against the gateway's keys
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from govgw.v1 import (
    access_pb2,
    access_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    conflicts_pb2,
    conflicts_pb2_grpc,
    lookup_pb2,
    lookup_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)
from grpc_status import rpc_status
from stdnum.cn import ric

from clients.receipts import (
    SignedReceipt,
    keyset_document,
    load_public_keys,
    open_commitment,
    public_keys_from_keyset,
    verify_receipt,
)
from clients.sdk_subjects import SubjectsClientMixin
from contract.metadata import OPERATOR_HEADER, OPERATOR_PATTERN

PERSON, LEGAL_ENTITY = "person", "legal_entity"
_APPLICATION_USES = {
    "DUTY": access_pb2.APPLICATION_USE_DUTY,
    "PUBLIC_SERVICE": access_pb2.APPLICATION_USE_PUBLIC_SERVICE,
    "INNOVATION": access_pb2.APPLICATION_USE_INNOVATION,
    "RESEARCH": access_pb2.APPLICATION_USE_RESEARCH,
    "COMMERCIAL": access_pb2.APPLICATION_USE_COMMERCIAL,
}
_KINDS = {
    PERSON: common_pb2.SUBJECT_KIND_PERSON,
    LEGAL_ENTITY: common_pb2.SUBJECT_KIND_LEGAL_ENTITY,
}


@dataclass(frozen=True)
class Violation:
    field: str
    description: str
    reason: str


@dataclass
class GovgwClientError(Exception):
    """A call failed: gRPC code, the gateway's reason and the fields at fault."""

    code: grpc.StatusCode
    reason: str
    message: str
    violations: list[Violation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None

    def __str__(self) -> str:
        text = f"{self.code.name} {self.reason}: {self.message}"
        if self.violations:
            text += " [" + "; ".join(f"{v.field}: {v.description}" for v in self.violations) + "]"
        return text

    @property
    def request_id(self) -> str:
        return self.metadata.get("request_id", "")

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.name,
            "reason": self.reason,
            "message": self.message,
            "violations": [v.__dict__ for v in self.violations],
            "metadata": self.metadata,
            "retry_after_s": self.retry_after_s,
        }

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> GovgwClientError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        message = err.details() if hasattr(err, "details") else str(err)
        out = cls(code=code, reason="", message=message or "")
        status = rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
        for detail in status.details if status else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                out.reason, out.metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                detail.Unpack(br)
                out.violations = [
                    Violation(v.field, v.description, v.reason) for v in br.field_violations
                ]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                ri = error_details_pb2.RetryInfo()
                detail.Unpack(ri)
                out.retry_after_s = ri.retry_delay.seconds + ri.retry_delay.nanos / 1e9
        return out


@dataclass(frozen=True)
class Provenance:
    source_department: str
    dataset: str
    dataset_version: str
    retrieved_at: datetime

    @classmethod
    def from_proto(cls, p: common_pb2.Provenance) -> Provenance:
        return cls(p.source_department, p.dataset, p.dataset_version, p.retrieved_at.ToDatetime())

    def to_json(self) -> dict[str, str]:
        return {
            "source_department": self.source_department,
            "dataset": self.dataset,
            "dataset_version": self.dataset_version,
            "retrieved_at": self.retrieved_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }


@dataclass(frozen=True)
class FieldValue:
    value: str
    treatment: str  # the masking operator applied; "keep" means raw


@dataclass(frozen=True)
class Disputed:
    """A field the answer used that is under correction (校核 pending, R8): accept the
    citizen's valid document for it rather than refusing service."""

    dataset: str
    field: str
    filed_on: str  # YYYY-MM-DD, China time

    def to_json(self) -> dict[str, str]:
        return {"dataset": self.dataset, "field": self.field, "filed_on": self.filed_on}

    def __str__(self) -> str:
        return f"{self.dataset}.{self.field} (correction filed {self.filed_on})"


def _disputed(items: Sequence[common_pb2.DisputedField]) -> tuple[Disputed, ...]:
    seen = dict.fromkeys(Disputed(d.dataset, d.field, d.filed_on) for d in items)
    return tuple(seen)


def disputed_notice(items: Sequence[Disputed]) -> str:
    """The human line for a counter clerk ('' when nothing is disputed)."""
    if not items:
        return ""
    return (
        "under correction (校核), accept the citizen's valid document: "
        + "; ".join(str(d) for d in items)
        + "\n"
    )


@dataclass(frozen=True)
class IdentityResult:
    matched: bool
    receipt: SignedReceipt | None
    request_id: str
    policy_version: str
    disputed: tuple[Disputed, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "disputed_fields": [d.to_json() for d in self.disputed],
            "result": "MATCH" if self.matched else "NO_MATCH",
            "receipt": self.receipt.to_json() if self.receipt else None,
            "receipt_claims": self.receipt.claims() if self.receipt else None,
            "request_id": self.request_id,
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class AttributesResult:
    results: dict[str, bool]  # "age_at_least(18)" -> True
    receipt: SignedReceipt | None
    request_id: str
    policy_version: str
    disputed: tuple[Disputed, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "disputed_fields": [d.to_json() for d in self.disputed],
            "results": self.results,
            "receipt": self.receipt.to_json() if self.receipt else None,
            "receipt_claims": self.receipt.claims() if self.receipt else None,
            "request_id": self.request_id,
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class LookupResult:
    records: list[dict[str, FieldValue]]
    provenance: Provenance
    request_id: str
    policy_version: str = ""
    index: int = 0
    found: bool = True
    # Released fields under correction (the same for every record of the subject).
    disputed: tuple[Disputed, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "disputed_fields": [d.to_json() for d in self.disputed],
            "records": [
                {k: {"value": v.value, "treatment": v.treatment} for k, v in r.items()}
                for r in self.records
            ],
            "provenance": self.provenance.to_json(),
            "request_id": self.request_id,
            "policy_version": self.policy_version,
            "found": self.found,
        }


def _records(records: Sequence[lookup_pb2.Record]) -> list[dict[str, FieldValue]]:
    return [{f.name: FieldValue(f.value, f.treatment) for f in r.fields} for r in records]


def _receipt(msg: common_pb2.Receipt, present: bool) -> SignedReceipt | None:
    return SignedReceipt.from_proto(msg) if present else None


def predicate_label(name: str, args: Sequence[str]) -> str:
    return f"{name}({','.join(args)})" if args else name


class GovgwClient(SubjectsClientMixin):  # data-subject rights: clients/sdk_subjects.py
    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        ca_cert: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        timeout_s: float = 10.0,
        verify_receipts: bool = True,
        options: Sequence[tuple[str, Any]] = (),
        operator: str = "",
    ) -> None:
        """`operator`: who at the caller makes the calls (a hall's signed-in clerk),
        written in every audit record and watched by the enumeration monitor on its own."""
        if ca_cert is not None:
            creds = grpc.ssl_channel_credentials(
                root_certificates=Path(ca_cert).read_bytes(),
                private_key=Path(client_key).read_bytes() if client_key else None,
                certificate_chain=Path(client_cert).read_bytes() if client_cert else None,
            )
            self._channel = grpc.secure_channel(target, creds, options=list(options))
        else:
            self._channel = grpc.insecure_channel(target, options=list(options))
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        if operator:
            if not OPERATOR_PATTERN.fullmatch(operator):
                raise ValueError("operator: 1-64 characters of letters, digits and . _ @ -")
            self._metadata += ((OPERATOR_HEADER, operator),)
        self.timeout_s = timeout_s
        self.verify_receipts = verify_receipts
        self._keys: dict[str, Any] | None = None
        self.verification = verification_pb2_grpc.VerificationServiceStub(self._channel)
        self.lookup_stub = lookup_pb2_grpc.LookupServiceStub(self._channel)
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self._channel)
        self.receipts = receipt_pb2_grpc.ReceiptServiceStub(self._channel)
        self.access = access_pb2_grpc.AccessServiceStub(self._channel)
        self.usage = usage_pb2_grpc.UsageServiceStub(self._channel)
        self.conflicts = conflicts_pb2_grpc.ConflictServiceStub(self._channel)

    def as_operator(self, operator: str) -> GovgwClient:
        """This client acting for one operator (a hall's signed-in clerk): the same
        channel and key, the operator in every call's metadata. For a web server that
        holds one hall's key and serves many clerks."""
        if not OPERATOR_PATTERN.fullmatch(operator):
            raise ValueError("operator: 1-64 characters of letters, digits and . _ @ -")
        client = copy.copy(self)
        client._metadata = (
            *(m for m in self._metadata if m[0] != OPERATOR_HEADER),
            (OPERATOR_HEADER, operator),
        )
        return client

    def __enter__(self) -> GovgwClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise GovgwClientError.from_rpc_error(err) from None

    # -- verification --------------------------------------------------------
    def verify_identity(self, name: str, id_number: str, *, purpose: str) -> IdentityResult:
        r = self._call(
            self.verification.VerifyIdentity,
            verification_pb2.VerifyIdentityRequest(name=name, id_number=id_number, purpose=purpose),
        )
        receipt = self._checked(_receipt(r.receipt, r.HasField("receipt")))
        return IdentityResult(
            r.result == verification_pb2.VERIFICATION_RESULT_MATCH,
            receipt,
            r.request_id,
            r.policy_version,
            _disputed(r.disputed_fields),
        )

    def verify_attributes(
        self,
        subject_key: str,
        predicates: Sequence[tuple[str, Sequence[str]]] | Mapping[str, Sequence[str]],
        *,
        purpose: str,
        kind: str | None = None,
    ) -> AttributesResult:
        kind = kind or guess_kind(subject_key)
        items = list(predicates.items()) if isinstance(predicates, Mapping) else list(predicates)
        r = self._call(
            self.verification.VerifyAttributes,
            verification_pb2.VerifyAttributesRequest(
                subject=common_pb2.Subject(kind=_KINDS.get(kind, 0), key=subject_key),
                predicates=[
                    verification_pb2.Predicate(name=n, args=[str(a) for a in args])
                    for n, args in items
                ],
                purpose=purpose,
            ),
        )
        receipt = self._checked(_receipt(r.receipt, r.HasField("receipt")))
        results = {predicate_label(x.predicate.name, x.predicate.args): x.value for x in r.results}
        return AttributesResult(
            results, receipt, r.request_id, r.policy_version, _disputed(r.disputed_fields)
        )

    # -- lookup --------------------------------------------------------------
    def lookup(
        self, dataset: str, subject_key: str, fields: Sequence[str] = (), *, purpose: str
    ) -> LookupResult:
        r = self._call(
            self.lookup_stub.Lookup,
            lookup_pb2.LookupRequest(
                dataset=dataset, subject_key=subject_key, fields=list(fields), purpose=purpose
            ),
        )
        return LookupResult(
            _records(r.records),
            Provenance.from_proto(r.provenance),
            r.request_id,
            r.policy_version,
            disputed=_disputed([d for rec in r.records for d in rec.disputed_fields]),
        )

    def batch_lookup(
        self, dataset: str, subject_keys: Sequence[str], fields: Sequence[str] = (), *, purpose: str
    ) -> Iterator[LookupResult]:
        request = lookup_pb2.BatchLookupRequest(
            dataset=dataset, subject_keys=list(subject_keys), fields=list(fields), purpose=purpose
        )
        try:
            for item in self.lookup_stub.BatchLookup(
                request, metadata=self._metadata, timeout=self.timeout_s
            ):
                yield LookupResult(
                    _records(item.records),
                    Provenance.from_proto(item.provenance),
                    item.request_id,
                    index=item.index,
                    found=item.found,
                    disputed=_disputed([d for rec in item.records for d in rec.disputed_fields]),
                )
        except grpc.RpcError as err:
            raise GovgwClientError.from_rpc_error(err) from None

    # -- catalog -------------------------------------------------------------
    def list_datasets(self, *, purpose: str = "") -> list[catalog_pb2.Dataset]:
        """Every dataset, all from one policy version's catalog: should a policy be
        activated between two pages, the listing starts again (a few times at most)."""
        for _attempt in range(3):
            out: list[catalog_pb2.Dataset] = []
            token, version = "", None
            while True:
                r = self._call(
                    self.catalog.ListDatasets,
                    catalog_pb2.ListDatasetsRequest(purpose=purpose, page_token=token),
                )
                if version is not None and r.policy_version != version:
                    break  # the catalog changed under the listing
                version = r.policy_version
                out.extend(r.datasets)
                token = r.next_page_token
                if not token:
                    return out
        return out

    def get_dataset(self, name: str, *, purpose: str = "") -> catalog_pb2.Dataset:
        return self._call(
            self.catalog.GetDataset, catalog_pb2.GetDatasetRequest(name=name, purpose=purpose)
        ).dataset

    # -- receipts ------------------------------------------------------------
    def receipt_keys(self) -> list[receipt_pb2.ReceiptKey]:
        return list(
            self._call(self.receipts.ListReceiptKeys, receipt_pb2.ListReceiptKeysRequest()).keys
        )

    def keyset(self) -> dict[str, Any]:
        """The gateway's receipt keys in the keyset file format `receipt verify` reads."""
        return keyset_document(
            (k.key_id, k.algorithm, k.public_key_pem) for k in self.receipt_keys()
        )

    # -- applications and grants (AccessService) ------------------------------
    def apply(
        self,
        dataset: str,
        fields: Sequence[str],
        *,
        purpose: str,
        scenario: str,
        duration_days: int,
        use: str = "",
        public_interest: bool = False,
        competitive_authorization: str = "",
        security_commitment_accepted: bool = False,
        use_agreement_accepted: bool = False,
    ) -> access_pb2.Application:
        """Apply for conditional share (agency) or conditional open (public) access."""
        uses = {"": 0, **{n.lower(): v for n, v in _APPLICATION_USES.items()}}
        if use not in uses:
            raise ValueError(f"use: one of {', '.join(n for n in uses if n)}")
        r = self._call(
            self.access.Apply,
            access_pb2.ApplyRequest(
                dataset=dataset,
                fields=list(fields),
                purpose=purpose,
                scenario=scenario,
                duration_days=duration_days,
                use=uses[use],
                public_interest=public_interest,
                competitive_authorization=competitive_authorization,
                security_commitment_accepted=security_commitment_accepted,
                use_agreement_accepted=use_agreement_accepted,
            ),
        )
        return r.application

    def list_applications(
        self, *, status: str = "", dataset: str = "", overdue_only: bool = False
    ) -> list[access_pb2.Application]:
        r = self._call(
            self.access.ListApplications,
            access_pb2.ListApplicationsRequest(
                status=status, dataset=dataset, overdue_only=overdue_only
            ),
        )
        return list(r.applications)

    def get_application(self, application_id: str) -> access_pb2.Application:
        r = self._call(
            self.access.GetApplication,
            access_pb2.GetApplicationRequest(application_id=application_id),
        )
        return r.application

    def decide_application(
        self,
        application_id: str,
        *,
        approve: bool,
        fields: Sequence[str] = (),
        reason: str = "",
        legal_basis: str = "",
    ) -> access_pb2.DecideApplicationResponse:
        return self._call(
            self.access.DecideApplication,
            access_pb2.DecideApplicationRequest(
                application_id=application_id,
                approve=approve,
                fields=list(fields),
                reason=reason,
                legal_basis=legal_basis,
            ),
        )

    def change_grant(self, grant_id: str, status: str, *, reason: str) -> access_pb2.Grant:
        """status: active (reinstate), suspended (misuse) or revoked (end)."""
        value = getattr(access_pb2, f"GRANT_STATUS_{status.upper()}", None)
        if value is None or status not in ("active", "suspended", "revoked"):
            raise ValueError("status: active, suspended or revoked")
        r = self._call(
            self.access.ChangeGrant,
            access_pb2.ChangeGrantRequest(grant_id=grant_id, status=value, reason=reason),
        )
        return r.grant

    def sweep_unused_grants(self) -> list[access_pb2.Grant]:
        r = self._call(self.access.SweepUnusedGrants, access_pb2.SweepUnusedGrantsRequest())
        return list(r.revoked)

    def usage_report(
        self, dataset: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> usage_pb2.GetUsageReportResponse:
        """Calls on a dataset by caller, department, purpose, action and outcome (providers)."""
        req = usage_pb2.GetUsageReportRequest(dataset=dataset)
        if since is not None:
            req.since.FromDatetime(since)
        if until is not None:
            req.until.FromDatetime(until)
        return self._call(self.usage.GetUsageReport, req)

    # -- emergencies (EmergencyService, R11) ------------------------------------
    @property
    def emergency(self) -> Any:
        from govgw.v1 import emergency_pb2_grpc

        if getattr(self, "_emergency_stub", None) is None:
            self._emergency_stub = emergency_pb2_grpc.EmergencyServiceStub(self._channel)
        return self._emergency_stub

    def declare_emergency(
        self,
        *,
        title: str,
        legal_basis: str,
        scope: Mapping[str, Sequence[str]],
        agencies: Sequence[str],
        purpose: str,
        ends_at: datetime | None,
    ) -> Any:
        """Declare an emergency (administrators): scope is dataset -> fields widened."""
        from govgw.v1 import emergency_pb2 as pb

        req = pb.DeclareEmergencyRequest(
            title=title,
            legal_basis=legal_basis,
            scope=[pb.EmergencyScope(dataset=d, fields=list(f)) for d, f in scope.items()],
            agencies=list(agencies),
            purpose=purpose,
        )
        if ends_at is not None:
            req.ends_at.FromDatetime(ends_at)
        return self._call(self.emergency.DeclareEmergency, req).emergency

    def end_emergency(self, emergency_id: str, *, reason: str) -> Any:
        """End an active emergency now (administrators): the ended emergency and the
        grants revoked (`revoked_grant_ids`)."""
        from govgw.v1 import emergency_pb2 as pb

        return self._call(
            self.emergency.EndEmergency,
            pb.EndEmergencyRequest(emergency_id=emergency_id, reason=reason),
        )

    def list_emergencies(self, *, status: str = "") -> list[Any]:
        """status: "", active or ended. An agency sees the emergencies naming it."""
        from govgw.v1 import emergency_pb2 as pb

        values = {"": 0, "active": pb.EMERGENCY_STATUS_ACTIVE, "ended": pb.EMERGENCY_STATUS_ENDED}
        if status not in values:
            raise ValueError("status: active or ended")
        r = self._call(
            self.emergency.ListEmergencies, pb.ListEmergenciesRequest(status=values[status])
        )
        return list(r.emergencies)

    def get_emergency(self, emergency_id: str) -> Any:
        from govgw.v1 import emergency_pb2 as pb

        return self._call(
            self.emergency.GetEmergency, pb.GetEmergencyRequest(emergency_id=emergency_id)
        ).emergency

    def sealing_list(self, emergency_id: str) -> Any:
        """Every call made under the emergency, subjects as keyed hashes (administrators)."""
        from govgw.v1 import emergency_pb2 as pb

        return self._call(
            self.emergency.GetSealingList, pb.GetSealingListRequest(emergency_id=emergency_id)
        )

    def seal_emergency(self, emergency_id: str) -> Any:
        """Record that what the sealing list names was sealed (administrators)."""
        from govgw.v1 import emergency_pb2 as pb

        return self._call(
            self.emergency.SealEmergency, pb.SealEmergencyRequest(emergency_id=emergency_id)
        ).emergency

    def list_conflicts(
        self, *, attribute: str = "", page_size: int = 0, page_token: str = ""
    ) -> conflicts_pb2.ListConflictsResponse:
        """One page of the conflicts report (R16; administrators)."""
        req = conflicts_pb2.ListConflictsRequest(
            attribute=attribute, page_size=page_size, page_token=page_token
        )
        return self._call(self.conflicts.ListConflicts, req)

    def conflicts_report(
        self, *, attribute: str = "", page_size: int = 0
    ) -> Iterator[conflicts_pb2.Conflict]:
        """Every conflict, fetching page after page."""
        token = ""
        while True:
            page = self.list_conflicts(attribute=attribute, page_size=page_size, page_token=token)
            yield from page.conflicts
            token = page.next_page_token
            if not token:
                return

    def _checked(self, receipt: SignedReceipt | None) -> SignedReceipt | None:
        if receipt is None or not self.verify_receipts:
            return receipt
        if self._keys is None or receipt.key_id not in self._keys:
            self._keys = public_keys_from_keyset(self.keyset(), "gateway keyset")
        verify_receipt(receipt, self._keys)
        return receipt


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


__all__ = [
    "GovgwClient",
    "GovgwClientError",
    "IdentityResult",
    "LookupResult",
    "load_public_keys",
    "open_commitment",
    "verify_receipt",
]


# -- policy administration (PolicyAdminService; callers of kind admin) ----------
class PolicyAdminClient(GovgwClient):
    """GovgwClient plus the policy administration calls.

    Bundles are read from a policy directory (every *.rego and data/*.json),
    and signed here, with the administrator's Ed25519 or SM2 key, when one is given:
    the private key never leaves this process.
    """

    def __init__(self, target: str, **kw: Any) -> None:
        super().__init__(target, **kw)
        from govgw.v1 import policy_admin_pb2_grpc

        self.policy_admin = policy_admin_pb2_grpc.PolicyAdminServiceStub(self._channel)

    @staticmethod
    def bundle(directory: Path) -> Any:
        from govgw.v1 import policy_admin_pb2 as pb

        from gateway.policy.bundle import read_policy_files

        files = read_policy_files(Path(directory))
        return pb.PolicyBundle(
            files=[pb.PolicyFile(path=p, content=b) for p, b in sorted(files.items())]
        )

    def validate_policy(self, directory: Path) -> Any:
        from govgw.v1 import policy_admin_pb2 as pb

        return self._call(
            self.policy_admin.Validate, pb.ValidateRequest(bundle=self.bundle(directory))
        )

    def test_policy(self, directory: Path, *, min_coverage: float = 0.0) -> Any:
        from govgw.v1 import policy_admin_pb2 as pb

        return self._call(
            self.policy_admin.Test,
            pb.TestRequest(bundle=self.bundle(directory), min_coverage=min_coverage),
        )

    def policy_impact(
        self, candidate: Path, *, window_s: float = 86400, max_examples: int = 0
    ) -> Any:
        from google.protobuf import duration_pb2
        from govgw.v1 import policy_admin_pb2 as pb

        window = duration_pb2.Duration()
        window.FromNanoseconds(int(window_s * 1e9))
        return self._call(
            self.policy_admin.Impact,
            pb.ImpactRequest(
                candidate=self.bundle(candidate), window=window, max_examples=max_examples
            ),
        )

    def activate_policy(
        self,
        *,
        reason: str,
        candidate: Path | None = None,
        version: str = "",
        sign_key: Path | None = None,
        key_id: str = "",
    ) -> Any:
        from govgw.v1 import policy_admin_pb2 as pb

        request = pb.ActivateRequest(reason=reason)
        if candidate is not None:
            request.bundle.CopyFrom(self.bundle(candidate))
        elif version:
            request.version = version
        if sign_key is not None:
            import base64

            from gateway.policy.bundle import read_policy_files
            from gateway.policy.versions import load_private_key, sign_files

            if candidate is None:
                raise ValueError("sign_key: signing needs the candidate directory")
            sig = sign_files(read_policy_files(candidate), load_private_key(sign_key), key_id)
            request.signature.CopyFrom(
                pb.BundleSignature(key_id=key_id, signature=base64.b64decode(sig.value))
            )
        return self._call(self.policy_admin.Activate, request)

    def rollback_policy(self, *, reason: str, version: str = "") -> Any:
        from govgw.v1 import policy_admin_pb2 as pb

        return self._call(
            self.policy_admin.Rollback, pb.RollbackRequest(version=version, reason=reason)
        )

    def list_policy_versions(self) -> Any:
        from govgw.v1 import policy_admin_pb2 as pb

        return self._call(self.policy_admin.ListVersions, pb.ListVersionsRequest())


__all__ += ["PolicyAdminClient"]
