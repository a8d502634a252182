"""The SDK's methods for data-subject rights (SubjectService), a dataset's opening
(OpeningService, R9) and the deadlines report (DeadlineService, R3), as table rows.

The subject's own calls take the subject token from the identity platform
(`subject_token`), sent as `x-govgw-subject-token` metadata beside the
caller's own credentials; the provider's calls need no token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from govgw.v1 import deadlines_pb2, opening_pb2
from govgw.v1 import subject_pb2 as pb

from clients.sdk import types as t
from clients.sdk.call import Call, Prepared
from clients.sdk.calls import _ts, answer, entity, enum_value, listing

TOKEN_HEADER = "x-govgw-subject-token"


def _as_subject(subject_token: str, request: Any) -> Prepared:
    return Prepared(request, ((TOKEN_HEADER, subject_token),) if subject_token else ())


# -- the data subject --------------------------------------------------------------------
def _my_usage(
    subject_token: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = 0,
    page_token: str = "",
) -> Prepared:
    """One page of the uses of the subject's data, newest first."""
    req = pb.ListMyUsageRequest(page_size=page_size, page_token=page_token)
    _ts(req, "since", since)
    _ts(req, "until", until)
    return _as_subject(subject_token, req)


def _all_my_usage(
    subject_token: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = 0,
) -> Prepared:
    """Every page of `my_usage`."""
    return _my_usage(subject_token, since=since, until=until, page_size=page_size)


def _file_correction(
    subject_token: str, *, dataset: str, field: str, statement: str, evidence_ref: str = ""
) -> Prepared:
    return _as_subject(
        subject_token,
        pb.FileCorrectionRequest(
            dataset=dataset, field=field, statement=statement, evidence_ref=evidence_ref
        ),
    )


def _my_corrections(subject_token: str) -> Prepared:
    return _as_subject(subject_token, pb.ListMyCorrectionsRequest())


def _request_withdrawal(subject_token: str, *, dataset: str, reason: str) -> Prepared:
    return _as_subject(subject_token, pb.RequestWithdrawalRequest(dataset=dataset, reason=reason))


def _my_withdrawals(subject_token: str) -> Prepared:
    return _as_subject(subject_token, pb.ListMyWithdrawalsRequest())


def _my_records(subject_token: str, *, dataset: str = "") -> Prepared:
    """What the pool holds about the subject, per dataset holding a record: raw values
    (secret fields withheld with the reason), provenance, and the fields under
    correction. The token must be fresh (issued at most 5 minutes ago)."""
    return _as_subject(subject_token, pb.GetMyRecordsRequest(dataset=dataset))


MY_USAGE = Call("subjects", "ListMyUsage", _my_usage, answer)
ALL_MY_USAGE = Call("subjects", "ListMyUsage", _all_my_usage, listing("uses"), paged=True)
FILE_CORRECTION = Call(
    "subjects", "FileCorrection", _file_correction, entity("correction", t.CorrectionResult)
)
MY_CORRECTIONS = Call("subjects", "ListMyCorrections", _my_corrections, listing("corrections"))
REQUEST_WITHDRAWAL = Call(
    "subjects", "RequestWithdrawal", _request_withdrawal, entity("withdrawal", t.WithdrawalResult)
)
MY_WITHDRAWALS = Call("subjects", "ListMyWithdrawals", _my_withdrawals, listing("withdrawals"))
MY_RECORDS = Call("subjects", "GetMyRecords", _my_records, answer)


# -- the provider ------------------------------------------------------------------------
def _list_corrections(
    *, dataset: str = "", status: t.CorrectionStatus | str = "", overdue_only: bool = False
) -> Prepared:
    return Prepared(
        pb.ListCorrectionsRequest(
            dataset=dataset,
            status=enum_value(t.CorrectionStatus, status, "status"),
            overdue_only=overdue_only,
        )
    )


def _extend_correction(correction_id: str, *, reason: str) -> Prepared:
    return Prepared(pb.ExtendCorrectionRequest(correction_id=correction_id, reason=reason))


def _answer_correction(
    correction_id: str, *, corrected: bool, note: str, legal_basis: str = ""
) -> Prepared:
    return Prepared(
        pb.AnswerCorrectionRequest(
            correction_id=correction_id, corrected=corrected, note=note, legal_basis=legal_basis
        )
    )


def _list_withdrawals(*, dataset: str = "", status: t.WithdrawalStatus | str = "") -> Prepared:
    return Prepared(
        pb.ListWithdrawalsRequest(
            dataset=dataset, status=enum_value(t.WithdrawalStatus, status, "status")
        )
    )


def _review_withdrawal(
    withdrawal_id: str, review: t.WithdrawalReview | str, *, reason: str
) -> Prepared:
    """review: uphold (stays withdrawn), reinstate, or reprocess (reinstated after
    reprocessing)."""
    return Prepared(
        pb.ReviewWithdrawalRequest(
            withdrawal_id=withdrawal_id,
            review=enum_value(t.WithdrawalReview, review, "review"),
            reason=reason,
        )
    )


LIST_CORRECTIONS = Call("subjects", "ListCorrections", _list_corrections, listing("corrections"))
EXTEND_CORRECTION = Call(
    "subjects", "ExtendCorrection", _extend_correction, entity("correction", t.CorrectionResult)
)
ANSWER_CORRECTION = Call(
    "subjects", "AnswerCorrection", _answer_correction, entity("correction", t.CorrectionResult)
)
LIST_WITHDRAWALS = Call("subjects", "ListWithdrawals", _list_withdrawals, listing("withdrawals"))
REVIEW_WITHDRAWAL = Call(
    "subjects", "ReviewWithdrawal", _review_withdrawal, entity("withdrawal", t.WithdrawalResult)
)


# -- a dataset's opening suspended on a security risk (R9) -------------------------------
def _suspend_opening(dataset: str, *, reason: str) -> Prepared:
    return Prepared(opening_pb2.SuspendOpeningRequest(dataset=dataset, reason=reason))


def _list_opening_suspensions(
    *, dataset: str = "", status: t.OpeningSuspensionStatus | str = ""
) -> Prepared:
    return Prepared(
        opening_pb2.ListOpeningSuspensionsRequest(
            dataset=dataset, status=enum_value(t.OpeningSuspensionStatus, status, "status")
        )
    )


def _withdraw_opening(suspension_id: str, *, reason: str) -> Prepared:
    return Prepared(opening_pb2.WithdrawOpeningRequest(suspension_id=suspension_id, reason=reason))


def _reopen_opening(suspension_id: str, *, reason: str, reprocessed: bool = False) -> Prepared:
    return Prepared(
        opening_pb2.ReopenOpeningRequest(
            suspension_id=suspension_id, reason=reason, reprocessed=reprocessed
        )
    )


_SUSPENSION = entity("suspension", t.OpeningSuspensionResult)
SUSPEND_OPENING = Call("opening", "SuspendOpening", _suspend_opening, _SUSPENSION)
LIST_OPENING_SUSPENSIONS = Call(
    "opening", "ListOpeningSuspensions", _list_opening_suspensions, listing("suspensions")
)
WITHDRAW_OPENING = Call("opening", "WithdrawOpening", _withdraw_opening, _SUSPENSION)
REOPEN_OPENING = Call("opening", "ReopenOpening", _reopen_opening, _SUSPENSION)


# -- the deadlines report (R3) -----------------------------------------------------------
def _deadlines(*, overdue_only: bool = False, dataset: str = "") -> Prepared:
    return Prepared(deadlines_pb2.ListDeadlinesRequest(overdue_only=overdue_only, dataset=dataset))


DEADLINES = Call("deadlines", "ListDeadlines", _deadlines, answer)
