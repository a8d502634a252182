"""VerificationService: yes/no answers about a subject (核验、比对, R4)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from govgw.v1 import common_pb2, verification_pb2

from gateway import release, subjects, validation
from gateway.call import Exec, Outcome, Request
from gateway.errors import not_found
from gateway.pipeline import Parts
from gateway.plan import VERIFY_ATTRIBUTES, VERIFY_IDENTITY
from gateway.predicates import Predicate, PredicateArgError, PredicateContext, get_predicate
from gateway.receipts import PendingReceipt
from gateway.routes import Answer, Incoming, Route, rows_of
from gateway.services.common import (
    SUBJECT_KINDS,
    defer_receipt,
    disputed_audit,
    require_predicate,
)

IDENTITY_DATASET = "population.basic"
MAX_PREDICATES = 16
MATCH, NO_MATCH = "MATCH", "NO_MATCH"


# VerifyAttributes' payload: the subject kind and each predicate with its parsed
# arguments and the message that named it (echoed in the result).
Parsed = tuple[str, list[tuple[Predicate, tuple[Any, ...], verification_pb2.Predicate]]]


class VerificationService:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        identity = get_predicate("identity_match")
        assert identity is not None
        self.identity = identity

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(verification_pb2.DESCRIPTOR, "VerificationService")
        return [
            row(
                "VerifyIdentity",
                VERIFY_IDENTITY,
                self.parse_identity,
                self.verify_identity,
                subject_keys=True,
                answer=Answer.MATCH,
            ),
            row(
                "VerifyAttributes",
                VERIFY_ATTRIBUTES,
                self.parse_attributes,
                self.verify_attributes,
                subject_keys=True,
                answer=Answer.PREDICATE,
            ),
        ]

    def parse_identity(
        self, request: verification_pb2.VerifyIdentityRequest, _in: Incoming
    ) -> Request[str]:
        v = validation.Violations()
        purpose = v.check(validation.purpose, request.purpose)
        return self.identity_request(v, purpose or "", request.name, request.id_number)

    def identity_request(
        self,
        v: validation.Violations,
        purpose: str,
        name_text: str,
        id_text: str,
        at: str = "",
        index: int = 0,
    ) -> Request[Any]:
        """One name and ID number -> the typed request; field paths under `at`
        ("items[3]." in a batch, whose payload is (index, name))."""
        id_number = v.check(subjects.normalize_id_number, id_text, f"{at}id_number")
        name = None
        try:
            (name,) = self.identity.parse_args([name_text])
        except PredicateArgError as e:
            v.add(f"{at}name", str(e), "NAME_INVALID")
        v.raise_if_any()
        return Request(
            purpose=purpose,
            datasets=(IDENTITY_DATASET,),
            subjects=(id_number or "",),
            predicates=("identity_match",),
            payload=(index, name or "") if at else name or "",
        )

    def identity_answer(
        self,
        ex: Exec[Any],
        name: str,
        rows: Sequence[Mapping[str, str]] | None = None,
        disputed_lookup: Callable[[str, str], Mapping[str, str]] | None = None,
    ) -> tuple[bool, list[common_pb2.DisputedField]]:
        """Does the name belong to the request's ID number, and the disputed fields.
        A batch passes the subject's rows it read already (`release.read_many`, same
        filters) and the call's pending corrections (`disputed_lookup`)."""
        identity = self.identity
        plan = ex.plans[IDENTITY_DATASET]
        require_predicate(plan, "identity_match", IDENTITY_DATASET)
        id_number = ex.request.subjects[0]
        if rows is None:
            rows = release.read(self.parts, ex, IDENTITY_DATASET, id_number)
        # Absent and mismatched answer alike, so the oracle does not reveal who is in the pool.
        matched = identity.evaluate(rows, (name,), PredicateContext(ex.today))
        # Only with a MATCH, which says the person is there anyway: a NO_MATCH naming
        # a disputed field would tell an absent person from a present one.
        disputed = (
            release.disputed_fields(
                self.parts, IDENTITY_DATASET, id_number, identity.fields, disputed_lookup
            )
            if matched
            else []
        )
        return matched, disputed

    def verify_identity(self, ex: Exec[str]) -> Outcome[verification_pb2.VerifyIdentityResponse]:
        matched, disputed = self.identity_answer(ex, ex.request.payload)
        answer = MATCH if matched else NO_MATCH
        id_number = ex.request.subjects[0]
        receipt = defer_receipt(
            self.parts,
            ex,
            action=VERIFY_IDENTITY,
            outcome=answer,
            dataset=IDENTITY_DATASET,
            subject=id_number,
            disputed=disputed,
        )
        response = verification_pb2.VerifyIdentityResponse(
            result=verification_pb2.VERIFICATION_RESULT_MATCH
            if matched
            else verification_pb2.VERIFICATION_RESULT_NO_MATCH,
            request_id=ex.request_id,
            policy_version=ex.policy_version,
            disputed_fields=disputed,
        )
        return Outcome(
            response,
            answer=answer,
            receipt_id=_receipt_id(receipt),
            receipt=receipt,
            audit=disputed_audit(disputed),
            misses=(not matched,),
        )

    def parse_attributes(
        self, request: verification_pb2.VerifyAttributesRequest, _in: Incoming
    ) -> Request[Parsed]:
        v = validation.Violations()
        purpose = v.check(validation.purpose, request.purpose)
        kind = SUBJECT_KINDS.get(request.subject.kind)
        key = None
        if kind is None:
            v.add("subject.kind", "must be PERSON or LEGAL_ENTITY", "SUBJECT_KIND_MISSING")
        else:
            key = v.check(subjects.normalize_subject_key, kind, request.subject.key, "subject.key")
        if not request.predicates:
            v.add("predicates", "name at least one predicate", "PREDICATES_MISSING")
        if len(request.predicates) > MAX_PREDICATES:
            v.add("predicates", f"at most {MAX_PREDICATES} per call", "TOO_MANY_PREDICATES")
        parsed = []
        for i, pr in enumerate(request.predicates[:MAX_PREDICATES]):
            predicate = get_predicate(pr.name)
            if predicate is None:
                v.add(f"predicates[{i}].name", "is not a known predicate", "UNKNOWN_PREDICATE")
                continue
            if kind is not None and predicate.subject_kind != kind:
                v.add(
                    f"predicates[{i}].name",
                    f"applies to subjects of kind {predicate.subject_kind}",
                    "PREDICATE_SUBJECT_KIND",
                )
                continue
            try:
                parsed.append((predicate, predicate.parse_args(list(pr.args)), pr))
            except PredicateArgError as e:
                v.add(f"predicates[{i}].args", str(e), "PREDICATE_ARGS_INVALID")
        v.raise_if_any()
        datasets = tuple(dict.fromkeys(p.dataset for p, _, _ in parsed))
        return Request(
            purpose=purpose or "",
            datasets=datasets,
            subjects=(key or "",),
            predicates=tuple(p.name for p, _, _ in parsed),
            payload=(kind or "", parsed),
        )

    def verify_attributes(
        self, ex: Exec[Parsed]
    ) -> Outcome[verification_pb2.VerifyAttributesResponse]:
        kind, parsed = ex.request.payload
        key = ex.request.subjects[0]
        for predicate, _, _ in parsed:
            require_predicate(ex.plans[predicate.dataset], predicate.name, predicate.dataset)
        rows = {ds: release.read(self.parts, ex, ds, key) for ds in ex.request.datasets}
        # Whether the subject is there (under the call's row constraint) is told only
        # where a plan reveals existence; the enumeration monitor always counts it.
        present = release.exists(self.parts, ex, kind, key, read_already=rows)
        revealed = any(p.obligations.reveal_existence for p in ex.plans.values())
        if not present and revealed:
            raise not_found("SUBJECT_NOT_FOUND", "no such subject in the pool")
        ctx = PredicateContext(ex.today)
        results = [
            verification_pb2.PredicateResult(
                predicate=msg, value=predicate.evaluate(rows[predicate.dataset], args, ctx)
            )
            for predicate, args, msg in parsed
        ]
        outcome = ",".join(f"{r.predicate.name}={str(r.value).lower()}" for r in results)
        # The fields the answered predicates rest on (each allowed by its plan above),
        # in datasets where a record was read, and only where the plans reveal existence
        # anyway (a disputed field says a record is there).
        used: dict[str, dict[str, None]] = {}
        for predicate, _, _ in parsed:
            used.setdefault(predicate.dataset, {}).update(dict.fromkeys(predicate.fields))
        disputed = [
            d
            for ds, fields in used.items()
            if rows[ds] and revealed
            for d in release.disputed_fields(self.parts, ds, key, fields)
        ]
        receipt = defer_receipt(
            self.parts,
            ex,
            action=VERIFY_ATTRIBUTES,
            outcome=outcome,
            dataset=",".join(ex.request.datasets),
            subject=key,
            disputed=disputed,
        )
        response = verification_pb2.VerifyAttributesResponse(
            results=results,
            request_id=ex.request_id,
            policy_version=ex.policy_version,
            disputed_fields=disputed,
        )
        return Outcome(
            response,
            receipt_id=_receipt_id(receipt),
            receipt=receipt,
            audit=disputed_audit(disputed),
            misses=(not present,),
        )


def _receipt_id(receipt: PendingReceipt | None) -> str:
    return receipt.receipt_id if receipt is not None else ""
