"""SubjectService's replies: corrections, withdrawals and the subject's own records
as protobuf messages, and the status names the requests filter by."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from govgw.v1 import common_pb2
from govgw.v1 import subject_pb2 as pb

from gateway import validation
from gateway.access.corrections import CORRECTED, PENDING, REJECTED
from gateway.access.withdrawals import REINSTATED, REPROCESSED, SUSPENDED, WITHDRAWN
from gateway.release.own import DatasetView
from gateway.services.common import timestamp

PURPOSE = validation.purpose("数据主体权利")  # recorded as the purpose of every subject-rights call

CORRECTION_STATUS = {
    PENDING: pb.CORRECTION_STATUS_PENDING,
    CORRECTED: pb.CORRECTION_STATUS_CORRECTED,
    REJECTED: pb.CORRECTION_STATUS_REJECTED,
}
CORRECTION_STATUS_NAMES = {v: k for k, v in CORRECTION_STATUS.items()}
WITHDRAWAL_STATUS = {
    SUSPENDED: pb.WITHDRAWAL_STATUS_SUSPENDED,
    WITHDRAWN: pb.WITHDRAWAL_STATUS_WITHDRAWN,
    REINSTATED: pb.WITHDRAWAL_STATUS_REINSTATED,
    REPROCESSED: pb.WITHDRAWAL_STATUS_REPROCESSED,
}
WITHDRAWAL_STATUS_NAMES = {v: k for k, v in WITHDRAWAL_STATUS.items()}
REVIEWS = {
    pb.WITHDRAWAL_REVIEW_UPHOLD: "uphold",
    pb.WITHDRAWAL_REVIEW_REINSTATE: "reinstate",
    pb.WITHDRAWAL_REVIEW_REPROCESS: "reprocess",
}
SUBJECT_TYPES = {"person": "person", "legal_entity": "entity"}


def correction_message(doc: Mapping[str, Any]) -> pb.Correction:
    answer = doc.get("answer") or {}
    return pb.Correction(
        id=doc["id"],
        dataset=doc["dataset"],
        field=doc["field"],
        statement=doc["statement"],
        evidence_ref=doc["evidence_ref"],
        provider=doc["provider"],
        status=CORRECTION_STATUS[doc["status"]],
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
        subject_type=SUBJECT_TYPES.get(doc["subject_type"], ""),
    )


def withdrawal_message(doc: Mapping[str, Any]) -> pb.Withdrawal:
    review = doc.get("review") or {}
    return pb.Withdrawal(
        id=doc["id"],
        dataset=doc["dataset"],
        reason=doc["reason"],
        provider=doc["provider"],
        status=WITHDRAWAL_STATUS[doc["status"]],
        requested_at=timestamp(doc["requested_at"]),
        review_reason=review.get("reason", ""),
        reviewed_at=timestamp(review["at"]) if review.get("at") else None,
        reviewed_by=review.get("department", ""),
        subject_key=doc["subject_key"],
        subject_type=SUBJECT_TYPES.get(doc["subject_type"], ""),
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
