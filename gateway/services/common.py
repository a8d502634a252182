"""Pieces several services share: row constraints, receipts, subject kinds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from google.protobuf import timestamp_pb2
from govgw.v1 import common_pb2

from gateway.access.disputes import disputed
from gateway.errors import denied
from gateway.pipeline import Exec, Parts
from gateway.plan import Plan
from gateway.predicates import Row
from gateway.subjects import LEGAL_ENTITY, PERSON

SUBJECT_KINDS = {
    common_pb2.SUBJECT_KIND_PERSON: PERSON,
    common_pb2.SUBJECT_KIND_LEGAL_ENTITY: LEGAL_ENTITY,
}
# Existence of a subject is judged in its base dataset, not in the dataset
# that answers a predicate (no social-assistance row does not mean no person).
BASE_DATASET = {PERSON: "population.basic", LEGAL_ENTITY: "legal_entity.basic"}


def timestamp(moment: datetime | str) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp from a datetime or an RFC 3339 string ("" gives the zero time)."""
    ts = timestamp_pb2.Timestamp()
    if isinstance(moment, str):
        if not moment:
            return ts
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    ts.FromDatetime(moment)
    return ts


def read_rows(parts: Parts, ex: Exec, dataset: str, subject_key: str) -> list[Row]:
    """The pool's rows of one subject in one dataset, for this call.

    Withdrawals (撤回, R9) apply here, at the one pool read every data RPC
    makes, and nowhere else: for a public caller (the open route) a withdrawn
    record is not read at all, so whatever the RPC builds from "no rows"
    (Lookup's SUBJECT_NOT_FOUND, a batch item not found, NO_MATCH, a false
    predicate, SUBJECT_NOT_FOUND where existence is revealed) is by
    construction exactly the answer for a subject the pool does not hold: no
    tell-tale. Agencies and counters read on the share route, which a
    withdrawal of opened data does not touch.
    """
    withdrawn = parts.withdrawn
    if ex.caller.kind == "public" and withdrawn is not None and withdrawn(dataset, subject_key):
        return []
    return parts.pool.read(dataset, subject_key)


def visible_rows(rows: Sequence[Row], plan: Plan) -> list[Row]:
    """Rows the plan's constraints let this caller see at all."""
    if not plan.region_prefix:
        return list(rows)
    return [r for r in rows if r.get("region_code", "").startswith(plan.region_prefix)]


def require_predicate(plan: Plan, name: str, dataset: str) -> None:
    if name not in plan.predicates:
        raise denied(
            "PREDICATE_NOT_ALLOWED",
            f"predicate {name} may not be answered for this caller and purpose",
            predicate=name,
            dataset=dataset,
        )


def disputed_fields(
    parts: Parts, dataset: str, subject_key: str, used: Iterable[str]
) -> list[common_pb2.DisputedField]:
    """The fields among `used` (what the plan let the call use) that are under
    correction for this subject (校核 pending, R8), with their filing dates."""
    return [
        common_pb2.DisputedField(dataset=d, field=f, filed_on=on)
        for d, f, on in disputed(parts.disputed, dataset, subject_key, used)
    ]


def disputed_audit(items: Sequence[common_pb2.DisputedField]) -> dict[str, list[str]]:
    """Audit details naming the disputed fields (names only; nothing if none)."""
    return {"disputed_fields": [f"{d.dataset}.{d.field}" for d in items]} if items else {}


def sign_receipt(
    parts: Parts,
    ex: Exec,
    *,
    action: str,
    outcome: str,
    dataset: str,
    subject: str,
    disputed: Sequence[common_pb2.DisputedField] = (),
) -> common_pb2.Receipt | None:
    """A receipt when the plans oblige one; it commits to the subject by keyed hash only.
    Fields under correction are claimed too: the receipt proves the clerk was told."""
    if not any(p.obligations.receipt for p in ex.plans.values()):
        return None
    receipt = parts.signer.issue(
        disputed_fields=",".join(f"{d.dataset}:{d.field}:{d.filed_on}" for d in disputed),
        caller=ex.caller.id,
        action=action,
        outcome=outcome,
        dataset=dataset,
        subject_commitment=parts.keyring.subject_hash(subject),
        policy_version=ex.policy_version,
        issued_at=ex.now,
    )
    return receipt.to_proto()
