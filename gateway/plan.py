"""The plan: what a decision allows, the heart of the gateway.

Policy evaluation returns a plan, not a bare allow: which fields leave and
through which masking operator, which predicates may be answered, row
constraints and obligations. A plan depends on caller, action, dataset,
purpose, grants and policy version, never on the individual record, which is
what makes it cacheable. Deny by default: a field the plan does not name
never leaves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from gateway.catalog import Treatment

# Actions the pipeline asks the policy about.
VERIFY_IDENTITY = "verify.identity"
VERIFY_ATTRIBUTES = "verify.attributes"
LOOKUP = "lookup"
CATALOG_READ = "catalog.read"
KEYS_READ = "keys.read"
ACCESS_APPLY = "access.apply"
ACCESS_READ = "access.read"
ACCESS_DECIDE = "access.decide"
ACCESS_SWEEP = "access.sweep"
USAGE_READ = "usage.read"
# Emergency mode (R11): administrators declare, end, seal and read sealing lists;
# designated agencies read the emergencies that name them.
EMERGENCY_DECLARE = "emergency.declare"
EMERGENCY_END = "emergency.end"
EMERGENCY_READ = "emergency.read"
EMERGENCY_SEALING = "emergency.sealing"
EMERGENCY_SEAL = "emergency.seal"
# Data-subject rights (gateway/services/subjects.py): the subject's own calls...
SUBJECT_USAGE = "subject.usage"
SUBJECT_CORRECT = "subject.correct"
SUBJECT_WITHDRAW = "subject.withdraw"
SUBJECT_READ = "subject.read"
# The subject reads what the pool holds about them (raw values: a fresh token).
SUBJECT_RECORDS = "subject.records"
# ...the provider's answers...
SUBJECT_REVIEW = "subject.review"
# ...and no RPC: asked per kind of audited use, may the subject see it (hidden by law)?
SUBJECT_DISCLOSE = "subject.disclose"
CONFLICTS_READ = "conflicts.read"
# Suspending a dataset's opening on a security risk (R9): providers and administrators.
OPENING_SUSPEND = "opening.suspend"
OPENING_READ = "opening.read"
# The deadlines report (R3): open applications and corrections with their deadlines.
DEADLINES_READ = "deadlines.read"


@dataclass(frozen=True)
class Obligations:
    receipt: bool = False  # sign a receipt for the response
    audit_level: str = "full"
    rate_tier: str = "standard"
    reveal_existence: bool = False  # may NOT_FOUND tell the caller a subject is absent?
    # The emergency (R11) whose grant allowed the call: audited, so its sealing list names it.
    emergency_id: str = ""


@dataclass(frozen=True)
class Plan:
    allow: bool
    reason: str = ""  # UPPER_SNAKE deny reason, e.g. DATASET_NOT_SHARED
    message: str = ""
    fields: dict[str, Treatment] = field(default_factory=dict)
    predicates: frozenset[str] = frozenset()
    region_prefix: str = ""  # row constraint: only records whose region_code starts with it
    obligations: Obligations = Obligations()
    grant_id: str = ""
    expires_at: str = ""  # RFC 3339; the plan may not be used (or cached) past it
    policy_version: str = ""

    @classmethod
    def deny(cls, reason: str, message: str, policy_version: str = "") -> Plan:
        return cls(allow=False, reason=reason, message=message, policy_version=policy_version)

    @classmethod
    def from_policy(cls, doc: dict[str, Any] | None, policy_version: str) -> Plan:
        """Build a plan from the policy's output; anything malformed denies."""
        if not isinstance(doc, dict) or doc.get("allow") is not True:
            doc = doc if isinstance(doc, dict) else {}
            return cls.deny(
                str(doc.get("reason") or "POLICY_DENIED"),
                str(doc.get("message") or "denied by policy"),
                policy_version,
            )
        fields = {
            str(name): Treatment(str(t["operator"]), dict(t.get("params") or {}))
            for name, t in (doc.get("fields") or {}).items()
        }
        ob = doc.get("obligations") or {}
        constraints = doc.get("constraints") or {}
        return cls(
            allow=True,
            fields=fields,
            predicates=frozenset(str(p) for p in doc.get("predicates") or ()),
            region_prefix=str(constraints.get("region_prefix") or ""),
            obligations=Obligations(
                receipt=bool(ob.get("receipt", False)),
                audit_level=str(ob.get("audit_level", "full")),
                rate_tier=str(ob.get("rate_tier", "standard")),
                reveal_existence=bool(ob.get("reveal_existence", False)),
                emergency_id=str(ob.get("emergency_id") or ""),
            ),
            grant_id=str(doc.get("grant_id") or ""),
            expires_at=str(doc.get("expires_at") or ""),
            policy_version=policy_version,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "allow": self.allow,
            "reason": self.reason,
            "fields": {
                k: {"operator": v.operator, "params": v.params}
                for k, v in sorted(self.fields.items())
            },
            "predicates": sorted(self.predicates),
            "region_prefix": self.region_prefix,
            # emergency_id only when set: plans without one keep the hash they always had.
            "obligations": {
                k: v for k, v in self.obligations.__dict__.items() if k != "emergency_id" or v
            },
            "grant_id": self.grant_id,
            "policy_version": self.policy_version,
        }

    @cached_property
    def hash(self) -> str:
        """Stable digest of the plan, recorded in audit so decisions can be compared."""
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]
