"""SDK methods for data-subject rights (SubjectService), mixed into GovgwClient.

The subject's own calls take the subject token from the identity platform
(`subject_token=`), sent as `x-govgw-subject-token` metadata beside the
caller's own credentials; the provider's calls need no token.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

import grpc
from govgw.v1 import (
    deadlines_pb2,
    deadlines_pb2_grpc,
    opening_pb2,
    opening_pb2_grpc,
    subject_pb2_grpc,
)
from govgw.v1 import subject_pb2 as pb

TOKEN_HEADER = "x-govgw-subject-token"
CORRECTION_STATUSES = ("pending", "corrected", "rejected")
WITHDRAWAL_STATUSES = ("suspended", "withdrawn", "reinstated", "reprocessed")
REVIEWS = ("uphold", "reinstate", "reprocess")
OPENING_STATUSES = ("suspended", "withdrawn", "reopened")


def _enum(prefix: str, name: str, allowed: tuple[str, ...], module: Any = pb) -> int:
    if not name:
        return 0
    if name not in allowed:
        raise ValueError(f"{prefix.lower()}: one of {', '.join(allowed)}")
    return int(getattr(module, f"{prefix}_{name.upper()}"))


class SubjectsClientMixin:
    _channel: grpc.Channel
    _metadata: tuple[tuple[str, str], ...]
    timeout_s: float

    @cached_property
    def subjects(self) -> subject_pb2_grpc.SubjectServiceStub:
        return subject_pb2_grpc.SubjectServiceStub(self._channel)

    @cached_property
    def opening(self) -> opening_pb2_grpc.OpeningServiceStub:
        return opening_pb2_grpc.OpeningServiceStub(self._channel)

    @cached_property
    def deadlines_stub(self) -> deadlines_pb2_grpc.DeadlineServiceStub:
        return deadlines_pb2_grpc.DeadlineServiceStub(self._channel)

    def _subject_call(self, method: Any, request: Any, subject_token: str | None) -> Any:
        from clients.sdk import GovgwClientError

        md = self._metadata + (((TOKEN_HEADER, subject_token),) if subject_token else ())
        try:
            return method(request, metadata=md, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise GovgwClientError.from_rpc_error(err) from None

    # -- the data subject ----------------------------------------------------------
    def my_usage(
        self,
        subject_token: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListMyUsageResponse:
        """One page of the uses of the subject's data, newest first."""
        req = pb.ListMyUsageRequest(page_size=page_size, page_token=page_token)
        if since is not None:
            req.since.FromDatetime(since)
        if until is not None:
            req.until.FromDatetime(until)
        return self._subject_call(self.subjects.ListMyUsage, req, subject_token)

    def all_my_usage(self, subject_token: str, **kw: Any) -> list[pb.DataUse]:
        """Every page of `my_usage`."""
        uses: list[pb.DataUse] = []
        token = ""
        while True:
            r = self.my_usage(subject_token, page_token=token, **kw)
            uses.extend(r.uses)
            token = r.next_page_token
            if not token:
                return uses

    def file_correction(
        self, subject_token: str, *, dataset: str, field: str, statement: str,
        evidence_ref: str = "",
    ) -> pb.Correction:  # fmt: skip
        r = self._subject_call(
            self.subjects.FileCorrection,
            pb.FileCorrectionRequest(
                dataset=dataset, field=field, statement=statement, evidence_ref=evidence_ref
            ),
            subject_token,
        )
        return r.correction

    def my_corrections(self, subject_token: str) -> list[pb.Correction]:
        r = self._subject_call(
            self.subjects.ListMyCorrections, pb.ListMyCorrectionsRequest(), subject_token
        )
        return list(r.corrections)

    def request_withdrawal(self, subject_token: str, *, dataset: str, reason: str) -> pb.Withdrawal:
        r = self._subject_call(
            self.subjects.RequestWithdrawal,
            pb.RequestWithdrawalRequest(dataset=dataset, reason=reason),
            subject_token,
        )
        return r.withdrawal

    def my_withdrawals(self, subject_token: str) -> list[pb.Withdrawal]:
        r = self._subject_call(
            self.subjects.ListMyWithdrawals, pb.ListMyWithdrawalsRequest(), subject_token
        )
        return list(r.withdrawals)

    def my_records(self, subject_token: str, *, dataset: str = "") -> pb.GetMyRecordsResponse:
        """What the pool holds about the subject, per dataset holding a record: raw values
        (secret fields withheld with the reason), provenance, and the fields under
        correction. The token must be fresh (issued at most 5 minutes ago)."""
        return self._subject_call(
            self.subjects.GetMyRecords, pb.GetMyRecordsRequest(dataset=dataset), subject_token
        )

    # -- the provider ----------------------------------------------------------------
    def list_corrections(
        self, *, dataset: str = "", status: str = "", overdue_only: bool = False
    ) -> list[pb.Correction]:
        req = pb.ListCorrectionsRequest(
            dataset=dataset,
            status=_enum("CORRECTION_STATUS", status, CORRECTION_STATUSES),
            overdue_only=overdue_only,
        )
        return list(self._subject_call(self.subjects.ListCorrections, req, None).corrections)

    def extend_correction(self, correction_id: str, *, reason: str) -> pb.Correction:
        r = self._subject_call(
            self.subjects.ExtendCorrection,
            pb.ExtendCorrectionRequest(correction_id=correction_id, reason=reason),
            None,
        )
        return r.correction

    def answer_correction(
        self, correction_id: str, *, corrected: bool, note: str, legal_basis: str = ""
    ) -> pb.Correction:
        r = self._subject_call(
            self.subjects.AnswerCorrection,
            pb.AnswerCorrectionRequest(
                correction_id=correction_id,
                corrected=corrected,
                note=note,
                legal_basis=legal_basis,
            ),
            None,
        )
        return r.correction

    def list_withdrawals(self, *, dataset: str = "", status: str = "") -> list[pb.Withdrawal]:
        req = pb.ListWithdrawalsRequest(
            dataset=dataset, status=_enum("WITHDRAWAL_STATUS", status, WITHDRAWAL_STATUSES)
        )
        return list(self._subject_call(self.subjects.ListWithdrawals, req, None).withdrawals)

    def review_withdrawal(self, withdrawal_id: str, review: str, *, reason: str) -> pb.Withdrawal:
        """review: uphold (stays withdrawn), reinstate, or reprocess (reinstated after reprocessing)."""
        r = self._subject_call(
            self.subjects.ReviewWithdrawal,
            pb.ReviewWithdrawalRequest(
                withdrawal_id=withdrawal_id,
                review=_enum("WITHDRAWAL_REVIEW", review, REVIEWS),
                reason=reason,
            ),
            None,
        )
        return r.withdrawal

    # -- a dataset's opening suspended on a security risk (R9) ------------------------
    def suspend_opening(self, dataset: str, *, reason: str) -> opening_pb2.OpeningSuspension:
        r = self._subject_call(
            self.opening.SuspendOpening,
            opening_pb2.SuspendOpeningRequest(dataset=dataset, reason=reason),
            None,
        )
        return r.suspension

    def list_opening_suspensions(
        self, *, dataset: str = "", status: str = ""
    ) -> list[opening_pb2.OpeningSuspension]:
        req = opening_pb2.ListOpeningSuspensionsRequest(
            dataset=dataset,
            status=_enum("OPENING_SUSPENSION_STATUS", status, OPENING_STATUSES, opening_pb2),
        )
        return list(self._subject_call(self.opening.ListOpeningSuspensions, req, None).suspensions)

    def withdraw_opening(self, suspension_id: str, *, reason: str) -> opening_pb2.OpeningSuspension:
        r = self._subject_call(
            self.opening.WithdrawOpening,
            opening_pb2.WithdrawOpeningRequest(suspension_id=suspension_id, reason=reason),
            None,
        )
        return r.suspension

    def reopen_opening(
        self, suspension_id: str, *, reason: str, reprocessed: bool = False
    ) -> opening_pb2.OpeningSuspension:
        r = self._subject_call(
            self.opening.ReopenOpening,
            opening_pb2.ReopenOpeningRequest(
                suspension_id=suspension_id, reason=reason, reprocessed=reprocessed
            ),
            None,
        )
        return r.suspension

    # -- the deadlines report (R3) ------------------------------------------------------
    def deadlines(
        self, *, overdue_only: bool = False, dataset: str = ""
    ) -> deadlines_pb2.ListDeadlinesResponse:
        req = deadlines_pb2.ListDeadlinesRequest(overdue_only=overdue_only, dataset=dataset)
        return self._subject_call(self.deadlines_stub.ListDeadlines, req, None)
