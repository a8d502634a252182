"""Pieces several services share: receipts, subject kinds, timestamps.

Reading the pool and applying a plan is `gateway.release`, not here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf import timestamp_pb2
from govgw.v1 import common_pb2

from gateway.call import Exec
from gateway.errors import denied
from gateway.pipeline import Parts
from gateway.plan import Plan
from gateway.receipts import PendingReceipt
from gateway.subjects import LEGAL_ENTITY, PERSON

SUBJECT_KINDS = {
    common_pb2.SUBJECT_KIND_PERSON: PERSON,
    common_pb2.SUBJECT_KIND_LEGAL_ENTITY: LEGAL_ENTITY,
}


def timestamp(moment: datetime | str) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp from a datetime or an RFC 3339 string ("" gives the zero time)."""
    ts = timestamp_pb2.Timestamp()
    if isinstance(moment, str):
        if not moment:
            return ts
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    ts.FromDatetime(moment)
    return ts


def require_predicate(plan: Plan, name: str, dataset: str) -> None:
    if name not in plan.predicates:
        raise denied(
            "PREDICATE_NOT_ALLOWED",
            f"predicate {name} may not be answered for this caller and purpose",
            predicate=name,
            dataset=dataset,
        )


def disputed_audit(items: Sequence[common_pb2.DisputedField]) -> dict[str, list[str]]:
    """Audit details naming the disputed fields (names only; nothing if none)."""
    return {"disputed_fields": [f"{d.dataset}.{d.field}" for d in items]} if items else {}


def defer_receipt(
    parts: Parts,
    ex: Exec,
    *,
    action: str,
    outcome: str,
    dataset: str,
    subject: str,
    disputed: Sequence[common_pb2.DisputedField] = (),
) -> PendingReceipt | None:
    """The claims of a receipt when the plans oblige one (it commits to the subject by
    a salted hash whose salt only the caller gets; fields under correction are claimed
    too: the receipt proves the clerk was told). The pipeline has it signed with the
    others of its audit group commit, once its record is durable, and sets it on the
    response's `receipt` (put it in `Outcome.receipt`)."""
    if not any(p.obligations.receipt for p in ex.plans.values()):
        return None
    return parts.signer.prepare(
        disputed_fields=",".join(f"{d.dataset}:{d.field}:{d.filed_on}" for d in disputed),
        caller=ex.caller.id,
        action=action,
        outcome=outcome,
        dataset=dataset,
        subject=subject,
        policy_version=ex.policy_version,
        issued_at=ex.now,
    )
