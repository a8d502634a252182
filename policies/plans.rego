# Plan documents: the one place that knows the shape of a decision.
#
# Every concept package builds its answer through allow() or deny(), so the
# gateway (gateway/plan.py Plan.from_policy) always reads the same shape.
package govgw.plans

import rego.v1

deny(reason, message) := {"allow": false, "reason": reason, "message": message}

# spec may name fields, predicates, constraints, obligations, grant_id and
# expires_at; whatever it leaves out gets the safe default (nothing released).
allow(spec) := {
	"allow": true,
	"reason": "",
	"message": "",
	"fields": object.get(spec, "fields", {}),
	"predicates": object.get(spec, "predicates", []),
	"constraints": object.get(spec, "constraints", {}),
	"obligations": object.union(default_obligations, object.get(spec, "obligations", {})),
	"grant_id": object.get(spec, "grant_id", ""),
	"expires_at": object.get(spec, "expires_at", ""),
}

# The public gets its own, tighter rate tier whatever it asks for.
default_obligations := {
	"receipt": false,
	"audit_level": "full",
	"rate_tier": rate_tier,
	"reveal_existence": false,
}

rate_tier := "public" if input.caller.kind == "public"

else := "standard"
