"""VerifyIdentityBatch: VerifyIdentity for many persons in one call (issue 13).

The steps of its own that the pipeline's batch mode (`gateway.batch`) runs:
each item parses and is answered exactly as a VerifyIdentity call would be
(`VerificationService.identity_request` / `identity_answer`), and the
answered items' receipts are signed once, over their Merkle tree's root
(`ReceiptSigner.issue_batch`), each with its inclusion proof and its own
commitment salt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from govgw.v1 import common_pb2, verification_pb2

from gateway import release, validation
from gateway.access.disputes import DisputedFields
from gateway.call import Exec, Incoming, Outcome, Request
from gateway.errors import GovgwError
from gateway.plan import VERIFY_IDENTITY
from gateway.receipts import ReceiptRequest
from gateway.routes import Answer, Route, rows_of
from gateway.services.common import disputed_audit
from gateway.services.verification import (
    IDENTITY_DATASET,
    MATCH,
    NO_MATCH,
    VerificationService,
)

MAX_ITEMS = 10_000
_NONE: Mapping[str, str] = {}
_RESULT = {
    MATCH: verification_pb2.VERIFICATION_RESULT_MATCH,
    NO_MATCH: verification_pb2.VERIFICATION_RESULT_NO_MATCH,
}


class IdentityBatch:
    """`BatchSteps` of VerifyIdentityBatch."""

    max_items = MAX_ITEMS

    def __init__(self, verification: VerificationService) -> None:
        self.verification = verification
        self.parts = verification.parts

    def route(self) -> Route[Any, Any]:
        row = rows_of(verification_pb2.DESCRIPTOR, "VerificationService")
        # The same action, plan and guards as VerifyIdentity: one decision per call,
        # every item limited and watched under its own subject key.
        return row(
            "VerifyIdentityBatch",
            VERIFY_IDENTITY,
            self.header,
            self.answer,
            subject_keys=True,
            answer=Answer.MATCH,
            batch=self,
        )

    def header(
        self, message: verification_pb2.VerifyIdentityBatchRequest, _in: Incoming
    ) -> Request[None]:
        v = validation.Violations()
        purpose = v.check(validation.purpose, message.purpose)
        v.raise_if_any()
        return Request(
            purpose=purpose or "", datasets=(IDENTITY_DATASET,), predicates=("identity_match",)
        )

    def items(
        self, message: verification_pb2.VerifyIdentityBatchRequest
    ) -> Sequence[verification_pb2.IdentityItem]:
        return message.items

    def parse_item(
        self, item: verification_pb2.IdentityItem, index: int, header: Request[Any]
    ) -> Request[tuple[int, str]]:
        return self.verification.identity_request(
            validation.Violations(),
            header.purpose,
            item.name,
            item.id_number,
            at=f"items[{index}].",
            index=index,
        )

    def begin(self, ex: Exec[Any]) -> _Scope:
        disputed = self.parts.disputed
        if not isinstance(disputed, DisputedFields):  # a lookup of another kind: per item
            return _Scope(lookup=disputed)
        # The pending corrections read once for the call (one stat, not one per item);
        # with none pending on the dataset, no item computes a subject hash for them.
        pending = disputed.pending(IDENTITY_DATASET)
        subject_hash = disputed.subject_hash

        def lookup(_dataset: str, subject_key: str) -> Mapping[str, str]:
            return pending.get(subject_hash(subject_key), _NONE) if pending else _NONE

        return _Scope(lookup=lookup)

    def ahead(self, scope: _Scope, requests: Sequence[Request[Any]]) -> None:
        scope.ahead = [r.subjects[0] for r in requests]
        scope.rows = {}

    def answer(
        self, ex: Exec[tuple[int, str]], scope: _Scope
    ) -> Outcome[verification_pb2.IdentityItemResult]:
        index, name = ex.request.payload
        subject = ex.request.subjects[0]
        rows = scope.rows.get(subject)
        if rows is None:
            # The first admitted item of the chunk reads the rows of it and of the items
            # after it in one pool query (a subject met twice in the chunk is answered
            # from that read); an item refused later had its rows read, but nothing of
            # them leaves.
            at = scope.ahead.index(subject) if subject in scope.ahead else len(scope.ahead)
            scope.rows = release.read_many(
                self.parts, ex, IDENTITY_DATASET, [subject, *scope.ahead[at + 1 :]]
            )
            scope.ahead = scope.ahead[at + 1 :]
            rows = scope.rows[subject]
        matched, disputed = self.verification.identity_answer(ex, name, rows, scope.lookup)
        answer = MATCH if matched else NO_MATCH
        result = verification_pb2.IdentityItemResult(
            index=index, result=_RESULT[answer], disputed_fields=disputed
        )
        return _Answered(
            result,
            answer=answer,
            audit=disputed_audit(disputed),
            misses=(not matched,),
            subject=ex.request.subjects[0],
            disputed=disputed,
        )

    def seal(self, ex: Exec[Any], answered: Sequence[Outcome[Any]]) -> None:
        if not any(p.obligations.receipt for p in ex.plans.values()):
            return
        items = [o for o in answered if isinstance(o, _Answered)]
        requests = [
            ReceiptRequest(
                caller=ex.caller.id,
                action=VERIFY_IDENTITY,
                outcome=o.answer,
                dataset=IDENTITY_DATASET,
                subject=o.subject,
                policy_version=ex.policy_version,
                issued_at=ex.now,
                disputed_fields=",".join(f"{d.dataset}:{d.field}:{d.filed_on}" for d in o.disputed),
            )
            for o in items
        ]
        signed = self.parts.signer.issue_batch(requests, batch_time=ex.now)
        for o, receipt in zip(items, signed, strict=True):
            o.receipt_id = receipt.receipt_id
            receipt.fill_proto(o.response.receipt)  # in its response chunk already

    def refused(self, index: int, error: GovgwError) -> verification_pb2.IdentityItemResult:
        return verification_pb2.IdentityItemResult(
            index=index,
            refusal=verification_pb2.ItemRefusal(
                code=error.code.name,
                reason=error.reason,
                message=error.message,
                fields=[v.field for v in error.violations],
            ),
        )

    def respond(
        self,
        results: Sequence[verification_pb2.IdentityItemResult],
        request_id: str,
        policy_version: str,
    ) -> verification_pb2.VerifyIdentityBatchResponse:
        return verification_pb2.VerifyIdentityBatchResponse(
            results=results, request_id=request_id, policy_version=policy_version
        )


@dataclass
class _Scope:
    """A call's scope: its pending corrections (read once), and the rows read ahead
    for the chunk of items being answered (subject key -> rows this call may see)."""

    lookup: Callable[[str, str], Mapping[str, str]] | None
    ahead: list[str] = field(default_factory=list)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)


@dataclass
class _Answered(Outcome[verification_pb2.IdentityItemResult]):
    """An item's answer, with what its receipt needs: the subject key stays in
    memory between `answer` and `seal` (the audit trail takes only Outcome's own
    fields, and the subject by its keyed hash)."""

    subject: str = ""
    disputed: list[common_pb2.DisputedField] = field(default_factory=list)
