"""SubjectService: data-subject rights (R8, R9) over the one pipeline.

The subject's own calls (subject.usage, subject.correct, subject.withdraw,
subject.read, subject.records) are carried by an authenticated caller (the citizen's app or a
service counter, as the policy decides) and prove the subject with a subject
token in `x-govgw-subject-token` (`gateway.access.subject_tokens`), checked
while the request is parsed, so the call's audit record carries the subject's
keyed hash and nothing else of them. The provider's calls (subject.review) are
checked against the catalog's provider by the stores. The domain logic lives
in `gateway.access.corrections`, `.withdrawals`, `.subject_usage` and `.my_records`.

Audit: transitions carry ids and codes in `details`, never a statement, a
reason written by the subject, a token or a subject key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from govgw.v1 import common_pb2
from govgw.v1 import subject_pb2 as pb

from gateway import validation
from gateway.access.corrections import CORRECTED, PENDING, REJECTED, CorrectionStore
from gateway.access.my_records import DatasetView, datasets_of, my_records
from gateway.access.subject_tokens import (
    TOKEN_HEADER,
    IssuerRegistry,
    SubjectIdentity,
    require_fresh,
    verify,
)
from gateway.access.subject_usage import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Disclosure,
    decode_cursor,
    uses_of,
)
from gateway.access.withdrawals import (
    REINSTATED,
    REPROCESSED,
    SUSPENDED,
    WITHDRAWN,
    WithdrawalStore,
)
from gateway.audit.index import AuditIndex
from gateway.catalog import Dataset
from gateway.config import ServeConfig
from gateway.pipeline import Exec, Outcome, Parts, Request
from gateway.plan import (
    SUBJECT_CORRECT,
    SUBJECT_READ,
    SUBJECT_RECORDS,
    SUBJECT_REVIEW,
    SUBJECT_USAGE,
    SUBJECT_WITHDRAW,
)
from gateway.routes import Incoming, Route, rows_of
from gateway.services.common import timestamp

PURPOSE = validation.purpose("数据主体权利")  # recorded as the purpose of every subject-rights call
# The subject's own calls: audited under their keyed hash, never listed to them as a use.
OWN_ACTIONS = frozenset(
    {SUBJECT_USAGE, SUBJECT_CORRECT, SUBJECT_WITHDRAW, SUBJECT_READ, SUBJECT_RECORDS}
)
DEFAULT_PERIOD = timedelta(days=366)
MAX_PERIOD = timedelta(days=5 * 366)

_CORRECTION_STATUS = {
    PENDING: pb.CORRECTION_STATUS_PENDING,
    CORRECTED: pb.CORRECTION_STATUS_CORRECTED,
    REJECTED: pb.CORRECTION_STATUS_REJECTED,
}
_CORRECTION_STATUS_NAMES = {v: k for k, v in _CORRECTION_STATUS.items()}
_WITHDRAWAL_STATUS = {
    SUSPENDED: pb.WITHDRAWAL_STATUS_SUSPENDED,
    WITHDRAWN: pb.WITHDRAWAL_STATUS_WITHDRAWN,
    REINSTATED: pb.WITHDRAWAL_STATUS_REINSTATED,
    REPROCESSED: pb.WITHDRAWAL_STATUS_REPROCESSED,
}
_WITHDRAWAL_STATUS_NAMES = {v: k for k, v in _WITHDRAWAL_STATUS.items()}
_REVIEWS = {
    pb.WITHDRAWAL_REVIEW_UPHOLD: "uphold",
    pb.WITHDRAWAL_REVIEW_REINSTATE: "reinstate",
    pb.WITHDRAWAL_REVIEW_REPROCESS: "reprocess",
}
_SUBJECT_TYPES = {"person": "person", "legal_entity": "entity"}


def correction_message(doc: Mapping[str, Any]) -> pb.Correction:
    answer = doc.get("answer") or {}
    return pb.Correction(
        id=doc["id"],
        dataset=doc["dataset"],
        field=doc["field"],
        statement=doc["statement"],
        evidence_ref=doc["evidence_ref"],
        provider=doc["provider"],
        status=_CORRECTION_STATUS[doc["status"]],
        filed_at=timestamp(doc["filed_at"]),
        due_date=doc["due"],
        working_days=int(doc["working_days"]),
        extended=bool(doc["extended"]),
        extension_reason=doc["extension_reason"],
        overdue=bool(doc["overdue"]),
        answer_note=answer.get("note", ""),
        legal_basis=answer.get("legal_basis", ""),
        answered_at=timestamp(answer["at"]) if answer.get("at") else None,
        answered_by=answer.get("department", ""),
        subject_key=doc["subject_key"],
        subject_type=_SUBJECT_TYPES.get(doc["subject_type"], ""),
    )


def withdrawal_message(doc: Mapping[str, Any]) -> pb.Withdrawal:
    review = doc.get("review") or {}
    return pb.Withdrawal(
        id=doc["id"],
        dataset=doc["dataset"],
        reason=doc["reason"],
        provider=doc["provider"],
        status=_WITHDRAWAL_STATUS[doc["status"]],
        requested_at=timestamp(doc["requested_at"]),
        review_reason=review.get("reason", ""),
        reviewed_at=timestamp(review["at"]) if review.get("at") else None,
        reviewed_by=review.get("department", ""),
        subject_key=doc["subject_key"],
        subject_type=_SUBJECT_TYPES.get(doc["subject_type"], ""),
    )


def my_dataset_message(view: DatasetView, now: datetime) -> pb.MyDataset:
    ds = view.dataset
    return pb.MyDataset(
        dataset=ds.name,
        title=ds.title,
        provenance=common_pb2.Provenance(
            source_department=ds.provider,
            dataset=ds.name,
            dataset_version=view.version,
            retrieved_at=timestamp(now),
        ),
        imported_at=timestamp(view.imported_at),
        records=[
            pb.MyRecord(
                fields=[
                    pb.MyFieldValue(
                        name=f.name,
                        title=f.title,
                        value=f.value,
                        withheld_reason=f.withheld_reason,
                        correction_pending_since=f.pending_since,
                    )
                    for f in record
                ]
            )
            for record in view.records
        ],
        withdrawn_from_open_data=view.withdrawn,
    )


# ----- typed payloads -------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageQuery:
    subject: SubjectIdentity
    since: datetime
    until: datetime
    size: int
    cursor: tuple[str, str] | None


@dataclass(frozen=True)
class CorrectionFiling:
    subject: SubjectIdentity
    dataset: str
    field: str
    statement: str
    evidence_ref: str


@dataclass(frozen=True)
class WithdrawalFiling:
    subject: SubjectIdentity
    dataset: str
    reason: str


@dataclass(frozen=True)
class ProviderFilter:
    dataset: str
    status: str  # a store status name, "" for any
    overdue_only: bool = False


@dataclass(frozen=True)
class Extension:
    correction_id: str
    reason: str


@dataclass(frozen=True)
class CorrectionAnswer:
    correction_id: str
    corrected: bool
    note: str
    legal_basis: str


@dataclass(frozen=True)
class Review:
    withdrawal_id: str
    review: str  # uphold / reinstate / reprocess, "" if not one of them
    reason: str


# GetMyRecords: the subject and the datasets their records may be in.
MyRecordsQuery = tuple[SubjectIdentity, tuple[Dataset, ...]]
X = TypeVar("X")


class SubjectService:
    def __init__(
        self,
        parts: Parts,
        *,
        issuers: IssuerRegistry,
        corrections: CorrectionStore,
        withdrawals: WithdrawalStore,
        audit: AuditIndex,
    ) -> None:
        self.parts = parts
        self.issuers = issuers
        self.corrections = corrections
        self.withdrawals = withdrawals
        self.audit = audit
        self.disclosure = Disclosure(parts.decider)

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(pb.DESCRIPTOR, "SubjectService")
        return [
            # the subject's own calls
            row("ListMyUsage", SUBJECT_USAGE, self.parse_my_usage, self.my_usage, in_thread=True),
            row(
                "FileCorrection",
                SUBJECT_CORRECT,
                self.parse_file_correction,
                self.file_correction,
                state_changing=True,
            ),
            row(
                "ListMyCorrections",
                SUBJECT_READ,
                self.parse_own,
                self.my_corrections,
            ),
            row(
                "RequestWithdrawal",
                SUBJECT_WITHDRAW,
                self.parse_request_withdrawal,
                self.request_withdrawal,
                state_changing=True,
            ),
            row(
                "ListMyWithdrawals",
                SUBJECT_READ,
                self.parse_own,
                self.my_withdrawals,
            ),
            row("GetMyRecords", SUBJECT_RECORDS, self.parse_my_records, self.my_records),
            # the provider's calls
            row(
                "ListCorrections",
                SUBJECT_REVIEW,
                self.parse_list_corrections,
                self.list_corrections,
            ),
            row(
                "ExtendCorrection",
                SUBJECT_REVIEW,
                self.parse_extend_correction,
                self.extend_correction,
                state_changing=True,
            ),
            row(
                "AnswerCorrection",
                SUBJECT_REVIEW,
                self.parse_answer_correction,
                self.answer_correction,
                state_changing=True,
            ),
            row(
                "ListWithdrawals",
                SUBJECT_REVIEW,
                self.parse_list_withdrawals,
                self.list_withdrawals,
            ),
            row(
                "ReviewWithdrawal",
                SUBJECT_REVIEW,
                self.parse_review_withdrawal,
                self.review_withdrawal,
                state_changing=True,
            ),
        ]

    # ----- the subject ---------------------------------------------------------------------

    def _subject(self, incoming: Incoming) -> SubjectIdentity:
        """The subject the token proves, bound (azp) to the caller that carries it."""
        token = incoming.metadata.get(TOKEN_HEADER, "")
        return verify(token, self.issuers, caller_id=incoming.caller.id, now=self.parts.clock())

    def _subject_request(
        self, subject: SubjectIdentity, payload: X, dataset: str = ""
    ) -> Request[X]:
        # The verified subject's key is the call's subject: audited by keyed hash, and part
        # of the idempotency fingerprint, so a key replays a stored answer (which may hold a
        # statement) to the same subject only, even when one app carries many citizens' calls.
        return Request(PURPOSE, (dataset,), subjects=(subject.key,), payload=payload)

    def parse_own(self, _request: Any, incoming: Incoming) -> Request[SubjectIdentity]:
        """ListMyCorrections, ListMyWithdrawals: nothing but the subject."""
        subject = self._subject(incoming)
        return self._subject_request(subject, subject)

    def parse_my_usage(
        self, request: pb.ListMyUsageRequest, incoming: Incoming
    ) -> Request[UsageQuery]:
        v = validation.Violations()
        span = v.check(
            validation.period,
            request,
            self.parts.clock(),
            DEFAULT_PERIOD,
            MAX_PERIOD,
            "five years",
        )
        if not 0 <= request.page_size <= MAX_PAGE:
            v.add("page_size", f"must be 1 to {MAX_PAGE}", "PAGE_SIZE_INVALID")
        cursor = v.check(decode_cursor, request.page_token) if request.page_token else None
        v.raise_if_any()
        assert span is not None
        subject = self._subject(incoming)
        since, until = span
        size = request.page_size or DEFAULT_PAGE
        return self._subject_request(subject, UsageQuery(subject, since, until, size, cursor))

    def my_usage(self, ex: Exec[UsageQuery]) -> Outcome[pb.ListMyUsageResponse]:
        q = ex.request.payload
        # The audit index is refreshed from the chains: in a worker thread (in_thread).
        page, token = uses_of(
            self.audit,
            self.parts.keyring.subject_hash(q.subject.key),
            since=q.since,
            until=q.until,
            exclude_actions=OWN_ACTIONS,
            disclosure=self.disclosure,
            now=ex.now,
            page_size=q.size,
            cursor=q.cursor,
        )
        return Outcome(
            pb.ListMyUsageResponse(
                uses=[
                    pb.DataUse(
                        at=timestamp(u.at),
                        caller=u.caller,
                        caller_kind=u.caller_kind,
                        department=u.department,
                        purpose=u.purpose,
                        action=u.action,
                        dataset=u.dataset,
                        outcome=u.outcome,
                        request_id=u.request_id,
                    )
                    for u in page
                ],
                next_page_token=token,
            ),
            # The listed page only: how many uses were hidden by law stays unsaid here too.
            audit={"uses_listed": len(page)},
        )

    def parse_file_correction(
        self, request: pb.FileCorrectionRequest, incoming: Incoming
    ) -> Request[CorrectionFiling]:
        # Audited as the call's dataset only if it is one (never the caller's raw text).
        ds = self.parts.catalog.get(request.dataset)
        subject = self._subject(incoming)
        filing = CorrectionFiling(
            subject, request.dataset, request.field, request.statement, request.evidence_ref
        )
        return self._subject_request(subject, filing, ds.name if ds else "")

    def file_correction(self, ex: Exec[CorrectionFiling]) -> Outcome[pb.FileCorrectionResponse]:
        f = ex.request.payload
        doc = self.corrections.file(
            f.subject,
            dataset=f.dataset,
            field=f.field,
            statement=f.statement,
            evidence_ref=f.evidence_ref,
            now=ex.now,
        )
        return Outcome(
            pb.FileCorrectionResponse(correction=correction_message(doc)),
            audit={
                "correction_id": doc["id"],
                "field": doc["field"],
                "transition": "filed",
                "due": doc["due"],
            },
        )

    def my_corrections(self, ex: Exec[SubjectIdentity]) -> Outcome[pb.ListMyCorrectionsResponse]:
        docs = self.corrections.mine(ex.request.payload, ex.now)
        return Outcome(
            pb.ListMyCorrectionsResponse(corrections=[correction_message(d) for d in docs])
        )

    def parse_request_withdrawal(
        self, request: pb.RequestWithdrawalRequest, incoming: Incoming
    ) -> Request[WithdrawalFiling]:
        # Audited as the call's dataset only if it is one (never the caller's raw text).
        ds = self.parts.catalog.get(request.dataset)
        subject = self._subject(incoming)
        filing = WithdrawalFiling(subject, request.dataset, request.reason)
        return self._subject_request(subject, filing, ds.name if ds else "")

    def request_withdrawal(
        self, ex: Exec[WithdrawalFiling]
    ) -> Outcome[pb.RequestWithdrawalResponse]:
        f = ex.request.payload
        doc = self.withdrawals.request(f.subject, dataset=f.dataset, reason=f.reason, now=ex.now)
        return Outcome(
            pb.RequestWithdrawalResponse(withdrawal=withdrawal_message(doc)),
            audit={"withdrawal_id": doc["id"], "transition": SUSPENDED},
        )

    def my_withdrawals(self, ex: Exec[SubjectIdentity]) -> Outcome[pb.ListMyWithdrawalsResponse]:
        docs = self.withdrawals.mine(ex.request.payload)
        return Outcome(
            pb.ListMyWithdrawalsResponse(withdrawals=[withdrawal_message(d) for d in docs])
        )

    def parse_my_records(
        self, request: pb.GetMyRecordsRequest, incoming: Incoming
    ) -> Request[MyRecordsQuery]:
        subject = self._subject(incoming)
        # Raw personal data leaves: only on a recent sign-in (subject_tokens.FRESH_FOR).
        require_fresh(subject, self.parts.clock())
        datasets = tuple(datasets_of(self.parts.catalog, subject, request.dataset))
        # One plan per dataset read, and the audit record names them all (the
        # datasets read, whether or not they hold a record: which do is not said).
        # With none of the subject's kind in the catalog the policy is still asked
        # (under ""): without a plan the pipeline would refuse nobody.
        return Request(
            PURPOSE,
            tuple(ds.name for ds in datasets) or ("",),
            subjects=(subject.key,),
            payload=(subject, datasets),
        )

    def my_records(self, ex: Exec[MyRecordsQuery]) -> Outcome[pb.GetMyRecordsResponse]:
        subject, datasets = ex.request.payload
        views = my_records(
            self.parts.pool,
            datasets,
            subject,
            disputed=self.parts.disputed,
            withdrawn=self.parts.withdrawn,
        )
        # Audited: the subject's keyed hash and the datasets read (the record's
        # `dataset`). No count of records, no withheld field: which datasets hold
        # the subject (social assistance, say) is itself personal data.
        return Outcome(
            pb.GetMyRecordsResponse(
                datasets=[my_dataset_message(v, ex.now) for v in views],
                request_id=ex.request_id,
            )
        )

    # ----- the provider --------------------------------------------------------------------

    def parse_list_corrections(
        self, request: pb.ListCorrectionsRequest, _in: Incoming
    ) -> Request[ProviderFilter]:
        v = validation.Violations()
        if request.dataset:
            v.check(validation.dataset, self.parts.catalog, request.dataset)
        if request.status and request.status not in _CORRECTION_STATUS_NAMES:
            v.add("status", "is not a known status", "STATUS_INVALID")
        v.raise_if_any()
        status = _CORRECTION_STATUS_NAMES.get(request.status, "")
        return Request(
            PURPOSE,
            (request.dataset,),
            payload=ProviderFilter(request.dataset, status, request.overdue_only),
        )

    def list_corrections(self, ex: Exec[ProviderFilter]) -> Outcome[pb.ListCorrectionsResponse]:
        f = ex.request.payload
        docs = self.corrections.for_provider(
            ex.caller, ex.now, dataset=f.dataset, status=f.status, overdue_only=f.overdue_only
        )
        return Outcome(
            pb.ListCorrectionsResponse(corrections=[correction_message(d) for d in docs])
        )

    def _correction_request(self, cid: str, payload: X) -> Request[X]:
        """The provider's call names the request; its audit record names its subject by hash,
        so the subject sees that the provider handled their data."""
        doc = self.corrections.get(cid) if cid else None
        if doc is None:
            return Request(PURPOSE, ("",), payload=payload)
        return Request(
            PURPOSE,
            (doc["dataset"],),
            subjects=(self.corrections.subject_of(doc),),
            payload=payload,
        )

    def parse_extend_correction(
        self, request: pb.ExtendCorrectionRequest, _in: Incoming
    ) -> Request[Extension]:
        return self._correction_request(
            request.correction_id, Extension(request.correction_id, request.reason)
        )

    def extend_correction(self, ex: Exec[Extension]) -> Outcome[pb.ExtendCorrectionResponse]:
        e = ex.request.payload
        doc = self.corrections.extend(ex.caller, e.correction_id, e.reason, ex.now)
        return Outcome(
            pb.ExtendCorrectionResponse(correction=correction_message(doc)),
            audit={"correction_id": doc["id"], "transition": "extended", "due": doc["due"]},
        )

    def parse_answer_correction(
        self, request: pb.AnswerCorrectionRequest, _in: Incoming
    ) -> Request[CorrectionAnswer]:
        answer = CorrectionAnswer(
            request.correction_id, request.corrected, request.note, request.legal_basis
        )
        return self._correction_request(request.correction_id, answer)

    def answer_correction(self, ex: Exec[CorrectionAnswer]) -> Outcome[pb.AnswerCorrectionResponse]:
        a = ex.request.payload
        doc = self.corrections.answer(
            ex.caller,
            a.correction_id,
            corrected=a.corrected,
            note=a.note,
            legal_basis=a.legal_basis,
            now=ex.now,
        )
        return Outcome(
            pb.AnswerCorrectionResponse(correction=correction_message(doc)),
            audit={"correction_id": doc["id"], "transition": doc["status"]},
        )

    def parse_list_withdrawals(
        self, request: pb.ListWithdrawalsRequest, _in: Incoming
    ) -> Request[ProviderFilter]:
        v = validation.Violations()
        if request.dataset:
            v.check(validation.dataset, self.parts.catalog, request.dataset)
        if request.status and request.status not in _WITHDRAWAL_STATUS_NAMES:
            v.add("status", "is not a known status", "STATUS_INVALID")
        v.raise_if_any()
        status = _WITHDRAWAL_STATUS_NAMES.get(request.status, "")
        return Request(PURPOSE, (request.dataset,), payload=ProviderFilter(request.dataset, status))

    def list_withdrawals(self, ex: Exec[ProviderFilter]) -> Outcome[pb.ListWithdrawalsResponse]:
        f = ex.request.payload
        docs = self.withdrawals.for_provider(ex.caller, dataset=f.dataset, status=f.status)
        return Outcome(
            pb.ListWithdrawalsResponse(withdrawals=[withdrawal_message(d) for d in docs])
        )

    def parse_review_withdrawal(
        self, request: pb.ReviewWithdrawalRequest, _in: Incoming
    ) -> Request[Review]:
        review = Review(request.withdrawal_id, _REVIEWS.get(request.review, ""), request.reason)
        doc = self.withdrawals.get(request.withdrawal_id) if request.withdrawal_id else None
        if doc is None:
            return Request(PURPOSE, ("",), payload=review)
        return Request(
            PURPOSE,
            (doc["dataset"],),
            subjects=(self.withdrawals.subject_of(doc),),
            payload=review,
        )

    def review_withdrawal(self, ex: Exec[Review]) -> Outcome[pb.ReviewWithdrawalResponse]:
        r = ex.request.payload
        doc = self.withdrawals.review(ex.caller, r.withdrawal_id, r.review, r.reason, ex.now)
        return Outcome(
            pb.ReviewWithdrawalResponse(withdrawal=withdrawal_message(doc)),
            audit={"withdrawal_id": doc["id"], "transition": doc["status"]},
        )


def subject_service(parts: Parts, config: ServeConfig) -> SubjectService:
    """The service with its stores in the data directory."""
    layout = config.layout
    return SubjectService(
        parts,
        issuers=IssuerRegistry(layout.subject_issuers),
        corrections=CorrectionStore(
            layout.corrections, parts.catalog, parts.keyring, jurisdiction=config.jurisdiction
        ),
        withdrawals=WithdrawalStore(layout.withdrawals, parts.catalog, parts.keyring),
        audit=AuditIndex(layout.audit_index, layout.audit_files),
    )
