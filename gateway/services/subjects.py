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

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import grpc
from govgw.v1 import common_pb2, subject_pb2_grpc
from govgw.v1 import subject_pb2 as pb

from gateway import validation
from gateway.access.corrections import CORRECTED, PENDING, REJECTED, CorrectionStore
from gateway.access.my_records import DatasetView, datasets_of, my_records
from gateway.access.subject_tokens import (
    TOKEN_HEADER,
    IssuerRegistry,
    SubjectIdentity,
    claimed_subject,
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
from gateway.config import ServeConfig
from gateway.pipeline import Exec, Outcome, Pipeline, Request
from gateway.plan import (
    SUBJECT_CORRECT,
    SUBJECT_READ,
    SUBJECT_RECORDS,
    SUBJECT_REVIEW,
    SUBJECT_USAGE,
    SUBJECT_WITHDRAW,
)
from gateway.services.common import timestamp

PURPOSE = "数据主体权利"  # recorded as the purpose of every subject-rights call
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


class SubjectService(subject_pb2_grpc.SubjectServiceServicer):
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        issuers: IssuerRegistry,
        corrections: CorrectionStore,
        withdrawals: WithdrawalStore,
        audit: AuditIndex,
    ) -> None:
        self.pipeline = pipeline
        self.parts = pipeline.parts
        self.issuers = issuers
        self.corrections = corrections
        self.withdrawals = withdrawals
        self.audit = audit
        self.disclosure = Disclosure(self.parts.decider)

    # ----- the subject ---------------------------------------------------------------------

    def _subject(self, context: grpc.aio.ServicerContext) -> SubjectIdentity:
        """The subject the token proves, bound (azp) to the caller that carries it."""
        md = context.invocation_metadata() or ()
        token = next((v for k, v in md if k == TOKEN_HEADER and isinstance(v, str)), "")
        # The pipeline authenticated the caller a moment ago; the token's azp is
        # checked against the same caller (a registry lookup, no second check).
        caller = self.parts.auth.authenticate(context)
        return verify(token, self.issuers, caller_id=caller.id, now=self.parts.clock())

    def _replay_bytes(self, request: Any, context: grpc.aio.ServicerContext) -> bytes:
        """The request and, by keyed hash, the subject it is for: an idempotency key then
        replays a stored answer (which may hold a statement) to the same subject only,
        even when one app carries many citizens' calls. The claim is read unverified
        here, but the pipeline parses (verifies the token) before it looks the key up."""
        md = context.invocation_metadata() or ()
        token = next((v for k, v in md if k == TOKEN_HEADER and isinstance(v, str)), "")
        subject = self.parts.keyring.subject_hash(claimed_subject(token))
        return request.SerializeToString() + b"\0" + subject.encode()

    def _subject_request(
        self, context: grpc.aio.ServicerContext, dataset: str = "", payload: Any = None
    ) -> Request:
        subject = self._subject(context)
        return Request(PURPOSE, (dataset,), subjects=(subject.key,), payload=(subject, payload))

    async def ListMyUsage(self, request: pb.ListMyUsageRequest, context):
        def parse() -> Request:
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
            size = request.page_size or DEFAULT_PAGE
            assert span is not None
            return self._subject_request(context, payload=(*span, size, cursor))

        async def execute(ex: Exec) -> Outcome[pb.ListMyUsageResponse]:
            subject, (since, until, size, cursor) = ex.request.payload
            # The audit index is refreshed from the chains: in a worker thread.
            page, token = await asyncio.to_thread(
                uses_of,
                self.audit,
                self.parts.keyring.subject_hash(subject.key),
                since=since,
                until=until,
                exclude_actions=OWN_ACTIONS,
                disclosure=self.disclosure,
                now=ex.now,
                page_size=size,
                cursor=cursor,
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

        return await self.pipeline.run(context, SUBJECT_USAGE, parse, execute)

    async def FileCorrection(self, request: pb.FileCorrectionRequest, context):
        def parse() -> Request:
            # Audited as the call's dataset only if it is one (never the caller's raw text).
            ds = self.parts.catalog.get(request.dataset)
            return self._subject_request(context, ds.name if ds else "")

        def execute(ex: Exec) -> Outcome[pb.FileCorrectionResponse]:
            subject, _ = ex.request.payload
            doc = self.corrections.file(
                subject,
                dataset=request.dataset,
                field=request.field,
                statement=request.statement,
                evidence_ref=request.evidence_ref,
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

        return await self.pipeline.run(
            context,
            SUBJECT_CORRECT,
            parse,
            execute,
            replay_as=pb.FileCorrectionResponse.FromString,
            request_bytes=self._replay_bytes(request, context),
        )

    async def ListMyCorrections(self, request: pb.ListMyCorrectionsRequest, context):
        def parse() -> Request:
            return self._subject_request(context)

        def execute(ex: Exec) -> Outcome[pb.ListMyCorrectionsResponse]:
            subject, _ = ex.request.payload
            docs = self.corrections.mine(subject, ex.now)
            return Outcome(
                pb.ListMyCorrectionsResponse(corrections=[correction_message(d) for d in docs])
            )

        return await self.pipeline.run(context, SUBJECT_READ, parse, execute)

    async def RequestWithdrawal(self, request: pb.RequestWithdrawalRequest, context):
        def parse() -> Request:
            # Audited as the call's dataset only if it is one (never the caller's raw text).
            ds = self.parts.catalog.get(request.dataset)
            return self._subject_request(context, ds.name if ds else "")

        def execute(ex: Exec) -> Outcome[pb.RequestWithdrawalResponse]:
            subject, _ = ex.request.payload
            doc = self.withdrawals.request(
                subject, dataset=request.dataset, reason=request.reason, now=ex.now
            )
            return Outcome(
                pb.RequestWithdrawalResponse(withdrawal=withdrawal_message(doc)),
                audit={"withdrawal_id": doc["id"], "transition": SUSPENDED},
            )

        return await self.pipeline.run(
            context,
            SUBJECT_WITHDRAW,
            parse,
            execute,
            replay_as=pb.RequestWithdrawalResponse.FromString,
            request_bytes=self._replay_bytes(request, context),
        )

    async def ListMyWithdrawals(self, request: pb.ListMyWithdrawalsRequest, context):
        def parse() -> Request:
            return self._subject_request(context)

        def execute(ex: Exec) -> Outcome[pb.ListMyWithdrawalsResponse]:
            subject, _ = ex.request.payload
            docs = self.withdrawals.mine(subject)
            return Outcome(
                pb.ListMyWithdrawalsResponse(withdrawals=[withdrawal_message(d) for d in docs])
            )

        return await self.pipeline.run(context, SUBJECT_READ, parse, execute)

    async def GetMyRecords(self, request: pb.GetMyRecordsRequest, context):
        def parse() -> Request:
            subject = self._subject(context)
            # Raw personal data leaves: only on a recent sign-in (subject_tokens.FRESH_FOR).
            require_fresh(subject, self.parts.clock())
            datasets = datasets_of(self.parts.catalog, subject, request.dataset)
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

        def execute(ex: Exec) -> Outcome[pb.GetMyRecordsResponse]:
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

        return await self.pipeline.run(context, SUBJECT_RECORDS, parse, execute)

    # ----- the provider --------------------------------------------------------------------

    async def ListCorrections(self, request: pb.ListCorrectionsRequest, context):
        def parse() -> Request:
            v = validation.Violations()
            if request.dataset:
                v.check(validation.dataset, self.parts.catalog, request.dataset)
            if request.status and request.status not in _CORRECTION_STATUS_NAMES:
                v.add("status", "is not a known status", "STATUS_INVALID")
            v.raise_if_any()
            return Request(PURPOSE, (request.dataset,))

        def execute(ex: Exec) -> Outcome[pb.ListCorrectionsResponse]:
            docs = self.corrections.for_provider(
                ex.caller,
                ex.now,
                dataset=request.dataset,
                status=_CORRECTION_STATUS_NAMES.get(request.status, ""),
                overdue_only=request.overdue_only,
            )
            return Outcome(
                pb.ListCorrectionsResponse(corrections=[correction_message(d) for d in docs])
            )

        return await self.pipeline.run(context, SUBJECT_REVIEW, parse, execute)

    def _correction_request(self, cid: str) -> Request:
        """The provider's call names the request; its audit record names its subject by hash,
        so the subject sees that the provider handled their data."""
        doc = self.corrections.get(cid) if cid else None
        if doc is None:
            return Request(PURPOSE, ("",))
        return Request(PURPOSE, (doc["dataset"],), subjects=(self.corrections.subject_of(doc),))

    async def ExtendCorrection(self, request: pb.ExtendCorrectionRequest, context):
        def parse() -> Request:
            return self._correction_request(request.correction_id)

        def execute(ex: Exec) -> Outcome[pb.ExtendCorrectionResponse]:
            doc = self.corrections.extend(ex.caller, request.correction_id, request.reason, ex.now)
            return Outcome(
                pb.ExtendCorrectionResponse(correction=correction_message(doc)),
                audit={"correction_id": doc["id"], "transition": "extended", "due": doc["due"]},
            )

        return await self.pipeline.run(
            context,
            SUBJECT_REVIEW,
            parse,
            execute,
            replay_as=pb.ExtendCorrectionResponse.FromString,
            request_bytes=request.SerializeToString(),
        )

    async def AnswerCorrection(self, request: pb.AnswerCorrectionRequest, context):
        def parse() -> Request:
            return self._correction_request(request.correction_id)

        def execute(ex: Exec) -> Outcome[pb.AnswerCorrectionResponse]:
            doc = self.corrections.answer(
                ex.caller,
                request.correction_id,
                corrected=request.corrected,
                note=request.note,
                legal_basis=request.legal_basis,
                now=ex.now,
            )
            return Outcome(
                pb.AnswerCorrectionResponse(correction=correction_message(doc)),
                audit={"correction_id": doc["id"], "transition": doc["status"]},
            )

        return await self.pipeline.run(
            context,
            SUBJECT_REVIEW,
            parse,
            execute,
            replay_as=pb.AnswerCorrectionResponse.FromString,
            request_bytes=request.SerializeToString(),
        )

    async def ListWithdrawals(self, request: pb.ListWithdrawalsRequest, context):
        def parse() -> Request:
            v = validation.Violations()
            if request.dataset:
                v.check(validation.dataset, self.parts.catalog, request.dataset)
            if request.status and request.status not in _WITHDRAWAL_STATUS_NAMES:
                v.add("status", "is not a known status", "STATUS_INVALID")
            v.raise_if_any()
            return Request(PURPOSE, (request.dataset,))

        def execute(ex: Exec) -> Outcome[pb.ListWithdrawalsResponse]:
            docs = self.withdrawals.for_provider(
                ex.caller,
                dataset=request.dataset,
                status=_WITHDRAWAL_STATUS_NAMES.get(request.status, ""),
            )
            return Outcome(
                pb.ListWithdrawalsResponse(withdrawals=[withdrawal_message(d) for d in docs])
            )

        return await self.pipeline.run(context, SUBJECT_REVIEW, parse, execute)

    async def ReviewWithdrawal(self, request: pb.ReviewWithdrawalRequest, context):
        def parse() -> Request:
            doc = self.withdrawals.get(request.withdrawal_id) if request.withdrawal_id else None
            if doc is None:
                return Request(PURPOSE, ("",))
            return Request(PURPOSE, (doc["dataset"],), subjects=(self.withdrawals.subject_of(doc),))

        def execute(ex: Exec) -> Outcome[pb.ReviewWithdrawalResponse]:
            doc = self.withdrawals.review(
                ex.caller,
                request.withdrawal_id,
                _REVIEWS.get(request.review, ""),
                request.reason,
                ex.now,
            )
            return Outcome(
                pb.ReviewWithdrawalResponse(withdrawal=withdrawal_message(doc)),
                audit={"withdrawal_id": doc["id"], "transition": doc["status"]},
            )

        return await self.pipeline.run(
            context,
            SUBJECT_REVIEW,
            parse,
            execute,
            replay_as=pb.ReviewWithdrawalResponse.FromString,
            request_bytes=request.SerializeToString(),
        )


def subject_service(pipeline: Pipeline, config: ServeConfig) -> SubjectService:
    """The service with its stores in the data directory."""
    layout, parts = config.layout, pipeline.parts
    return SubjectService(
        pipeline,
        issuers=IssuerRegistry(layout.subject_issuers),
        corrections=CorrectionStore(
            layout.corrections, parts.catalog, parts.keyring, jurisdiction=config.jurisdiction
        ),
        withdrawals=WithdrawalStore(layout.withdrawals, parts.catalog, parts.keyring),
        audit=AuditIndex(layout.audit_index, layout.audit_files),
    )
