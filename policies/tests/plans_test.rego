package govgw.plans_test

import rego.v1

import data.govgw.plans

test_deny_shape if {
	plans.deny("X_Y", "m") == {"allow": false, "reason": "X_Y", "message": "m"}
}

test_allow_defaults_release_nothing if {
	p := plans.allow({}) with input as {"caller": {"kind": "agency"}}
	p.fields == {}
	p.predicates == []
	p.constraints == {}
	p.obligations == {"receipt": false, "audit_level": "full", "rate_tier": "standard", "reveal_existence": false}
}

test_allow_obligations_override_defaults if {
	p := plans.allow({"obligations": {"receipt": true}}) with input as {"caller": {"kind": "public"}}
	p.obligations.receipt == true
	p.obligations.rate_tier == "public"
}
