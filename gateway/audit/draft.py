"""The audit record of one call, taking shape as the call goes through the pipeline.

`events` turns it into what the trail keeps: ids, codes, the plan's hash and
the policy version, never a value; one record per subject (under its keyed
hash) so a data subject can later list every use of their data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.call import Outcome, Request
from gateway.callers import Caller
from gateway.errors import GovgwError
from gateway.plan import Plan

# The pipeline's one log line per call: ids and codes only, never a value.
CALL_LINE = (
    "request %(request_id)s caller=%(caller)s action=%(action)s dataset=%(dataset)s"
    " outcome=%(code)s reason=%(reason)s latency_ms=%(latency_ms).2f"
)


@dataclass
class AuditDraft:
    """The audit record taking shape as the call goes through the pipeline."""

    request_id: str
    action: str
    caller: Caller | None = None
    request: Request | None = None
    subjects: tuple[str, ...] = ()  # the request's subject keys, as keyed hashes
    plans: dict[str, Plan] = field(default_factory=dict)
    outcome: str = ""
    reason: str = ""
    answer: str = ""
    receipt_id: str = ""
    violations: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    extra: list[dict[str, Any]] = field(default_factory=list)  # e.g. a suspension it caused
    replayed: bool = False  # answered from an idempotency key's stored response
    details: dict[str, Any] = field(default_factory=dict)  # Outcome.audit

    def succeed(self, outcome: Outcome[Any]) -> None:
        self.outcome = "OK"
        self.answer = outcome.answer
        self.receipt_id = outcome.receipt_id
        self.details = dict(outcome.audit)

    def fail(self, err: GovgwError) -> None:
        self.outcome = err.code.name
        self.reason = err.reason
        # Field paths only: a violation's description never holds the value.
        self.violations = [v.field for v in err.violations]

    def log_fields(self, code: str, reason: str, seconds: float) -> dict[str, Any]:
        """The call line's fields (CALL_LINE; gateway.logs.CALL_FIELDS): no subject, no purpose."""
        return {
            "request_id": self.request_id,
            "caller": self.caller.id if self.caller else "-",
            "action": self.action,
            "dataset": ",".join(self.request.datasets) if self.request else "-",
            "code": code,
            "reason": reason or "-",
            "latency_ms": round(seconds * 1000, 3),
        }

    def events(self) -> list[dict[str, Any]]:
        req = self.request
        plans = self.plans
        allowed = bool(plans) and all(p.allow for p in plans.values())
        base: dict[str, Any] = {
            "request_id": self.request_id,
            "caller": self.caller.id if self.caller else "",
            "caller_kind": self.caller.kind if self.caller else "",
            "department": self.caller.department if self.caller else "",
            # Policy input the replay (impact preview) needs; a region code is no personal data.
            "caller_region": self.caller.region if self.caller else "",
            "action": self.action,
            "dataset": ",".join(req.datasets) if req else "",
            "purpose": req.purpose if req else "",
            "decision": "allow" if allowed else "deny",
            "reason": self.reason,
            "policy_version": next(iter(plans.values())).policy_version if plans else "",
            "plan_hash": _combined_hash(plans),
            "outcome": self.outcome,
            "latency_ms": self.latency_ms,
            "input": {
                "fields": list(req.fields) if req else [],
                "predicates": list(req.predicates) if req else [],
                "violations": self.violations,
            },
        }
        if self.caller is not None and self.caller.operator:
            base["operator"] = self.caller.operator  # who at the caller made the call
        if self.answer:
            base["answer"] = self.answer
        if self.replayed:
            base["replayed"] = True
        if self.receipt_id:
            base["receipt_id"] = self.receipt_id
        if self.details:
            base["details"] = self.details
        grants = sorted({p.grant_id for p in plans.values() if p.grant_id})
        if grants:
            base["grants"] = grants
        # Calls made under an emergency (R11) name it: its sealing list is read from here.
        emergencies = sorted(
            {p.obligations.emergency_id for p in plans.values() if p.obligations.emergency_id}
        )
        if emergencies:
            base["emergencies"] = emergencies
        extra = [{**e, "request_id": self.request_id} for e in self.extra]
        if not self.subjects:
            return [{**base, "subject": ""}, *extra]
        # One record per subject, so a data subject can later list every use of their data.
        return [{**base, "subject": h} for h in self.subjects] + extra


def _combined_hash(plans: dict[str, Plan]) -> str:
    if not plans:
        return ""
    if len(plans) == 1:
        return next(iter(plans.values())).hash
    return "+".join(plans[ds].hash for ds in sorted(plans))
