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

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from govgw.v1 import subject_pb2 as pb

from gateway import validation
from gateway.access.corrections import CorrectionStore
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
    SUSPENDED,
    WithdrawalStore,
)
from gateway.audit.index import BaseAuditIndex
from gateway.call import Exec, Outcome, Request
from gateway.catalog import Dataset
from gateway.pipeline import Parts
from gateway.plan import (
    SUBJECT_CORRECT,
    SUBJECT_READ,
    SUBJECT_RECORDS,
    SUBJECT_USAGE,
    SUBJECT_WITHDRAW,
)
from gateway.release.own import datasets_of, my_records
from gateway.routes import Incoming, Route, rows_of
from gateway.services.common import timestamp
from gateway.services.subject_messages import (
    PURPOSE,
    correction_message,
    my_dataset_message,
    withdrawal_message,
)

# The subject's own calls: audited under their keyed hash, never listed to them as a use.
OWN_ACTIONS = frozenset(
    {SUBJECT_USAGE, SUBJECT_CORRECT, SUBJECT_WITHDRAW, SUBJECT_READ, SUBJECT_RECORDS}
)
DEFAULT_PERIOD = timedelta(days=366)
MAX_PERIOD = timedelta(days=5 * 366)


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


X = TypeVar("X")
# GetMyRecords: the subject and the datasets their records may be in.
MyRecordsQuery = tuple[SubjectIdentity, tuple[Dataset, ...]]


class SubjectService:
    def __init__(
        self,
        parts: Parts,
        *,
        issuers: IssuerRegistry,
        corrections: CorrectionStore,
        withdrawals: WithdrawalStore,
        audit: BaseAuditIndex,
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
