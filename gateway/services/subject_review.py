"""SubjectService, the provider's side: corrections and withdrawals filed about the
provider's data, reviewed within their deadlines (R8, R9). The stores check that the
caller is the dataset's provider (bound by provider id)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from govgw.v1 import subject_pb2 as pb

from gateway import validation
from gateway.access.corrections import CorrectionStore
from gateway.access.withdrawals import (
    WithdrawalStore,
)
from gateway.call import Exec, Outcome, Request
from gateway.pipeline import Parts
from gateway.plan import (
    SUBJECT_REVIEW,
)
from gateway.routes import Incoming, Route, rows_of
from gateway.services.subject_messages import (
    CORRECTION_STATUS_NAMES,
    PURPOSE,
    REVIEWS,
    WITHDRAWAL_STATUS_NAMES,
    correction_message,
    withdrawal_message,
)

X = TypeVar("X")


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


class ProviderReview:
    def __init__(
        self, parts: Parts, corrections: CorrectionStore, withdrawals: WithdrawalStore
    ) -> None:
        self.parts = parts
        self.corrections = corrections
        self.withdrawals = withdrawals

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(pb.DESCRIPTOR, "SubjectService")
        return [
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

    def _filter(
        self, dataset: str, status: Any, names: Mapping[Any, str], overdue_only: bool = False
    ) -> Request[ProviderFilter]:
        """A provider's listing: an optional dataset and status (by its proto value)."""
        v = validation.Violations()
        if dataset:
            v.check(validation.dataset, self.parts.catalog, dataset)
        if status and status not in names:
            v.add("status", "is not a known status", "STATUS_INVALID")
        v.raise_if_any()
        return Request(
            PURPOSE,
            (dataset,),
            payload=ProviderFilter(dataset, names.get(status, ""), overdue_only),
        )

    def parse_list_corrections(
        self, request: pb.ListCorrectionsRequest, _in: Incoming
    ) -> Request[ProviderFilter]:
        return self._filter(
            request.dataset, request.status, CORRECTION_STATUS_NAMES, request.overdue_only
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
        return self._filter(request.dataset, request.status, WITHDRAWAL_STATUS_NAMES)

    def list_withdrawals(self, ex: Exec[ProviderFilter]) -> Outcome[pb.ListWithdrawalsResponse]:
        f = ex.request.payload
        docs = self.withdrawals.for_provider(ex.caller, dataset=f.dataset, status=f.status)
        return Outcome(
            pb.ListWithdrawalsResponse(withdrawals=[withdrawal_message(d) for d in docs])
        )

    def parse_review_withdrawal(
        self, request: pb.ReviewWithdrawalRequest, _in: Incoming
    ) -> Request[Review]:
        review = Review(request.withdrawal_id, REVIEWS.get(request.review, ""), request.reason)
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
