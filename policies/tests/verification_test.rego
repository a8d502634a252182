package govgw.verification_test

import rego.v1

import data.govgw.decision
import data.govgw.fixtures_test as fx
import data.govgw.verification

test_identity_for_agency_and_counter if {
	every kind in ["agency", "counter"] {
		p := verification.identity with input as fx.request(kind, "verify.identity", "population.basic")
		p.allow == true
		p.predicates == ["identity_match"]
		p.fields == {}
		p.constraints == {}
		p.obligations.receipt == true
		p.obligations.reveal_existence == false
	}
}

test_identity_allowed_where_lookup_is_not if {
	# R4: even with sharing refused, the yes/no check stays available
	p := verification.identity with input as fx.request("agency", "verify.identity", "population.basic")
		with data.catalog.datasets["population.basic"].share_class as "none"
	p.allow == true
}

test_identity_denied_to_public if {
	p := verification.identity with input as fx.request("public", "verify.identity", "population.basic")
	p.reason == "VERIFICATION_NOT_ALLOWED"
}

test_identity_on_dataset_without_identity_match if {
	p := verification.identity with input as fx.request("agency", "verify.identity", "legal_entity.basic")
	p.reason == "PREDICATE_NOT_AVAILABLE"
}

test_attributes_for_agency_list_dataset_predicates_without_identity_match if {
	p := verification.attributes with input as fx.request("agency", "verify.attributes", "population.basic")
	p.allow == true
	p.predicates == ["age_at_least", "resident_in"]
	p.fields == {}
	p.obligations.receipt == true
	p.obligations.reveal_existence == true
}

test_attributes_on_unshared_conditional_dataset_without_grant if {
	# R4: social assistance needs a grant to look up, but not to verify
	p := verification.attributes with input as fx.request("counter", "verify.attributes", "social_assistance.recipient")
		with data.grants as []
	p.allow == true
	p.predicates == ["receives_social_assistance"]

	# regional data: the counter's attribute checks follow its region
	p.constraints == {"region_prefix": "513221"}
}

test_attributes_for_public_on_open_dataset if {
	p := verification.attributes with input as fx.request("public", "verify.attributes", "legal_entity.basic")
	p.allow == true
	p.predicates == ["entity_active"]
	p.obligations.receipt == true
	p.obligations.reveal_existence == false
	p.obligations.rate_tier == "public"
}

test_attributes_for_public_on_closed_or_conditional_dataset if {
	every ds in ["population.basic", "licence.business", "social_assistance.recipient"] {
		p := verification.attributes with input as fx.request("public", "verify.attributes", ds)
		p.reason == "VERIFICATION_NOT_ALLOWED"
	}
}

test_attributes_on_dataset_without_predicates if {
	p := verification.attributes with input as fx.request("agency", "verify.attributes", "credit.record")
	p.reason == "PREDICATE_NOT_AVAILABLE"
}

test_attributes_exclude_identity_match_from_mixed_dataset if {
	p := verification.attributes with input as fx.request("agency", "verify.attributes", "test.mixed")
		with data.catalog as fx.catalog
	p.predicates == ["p1"]
}

test_verification_reached_through_decision if {
	p := decision.plan with input as fx.request("counter", "verify.identity", "population.basic")
	p.predicates == ["identity_match"]
	q := decision.plan with input as fx.request("public", "verify.attributes", "legal_entity.basic")
	q.predicates == ["entity_active"]
}

# Per action, whether the caller's region bounds it (govgw.regions.bounds).
test_region_bounds_per_action if {
	data.govgw.regions.bounds == {"lookup": true, "verify.attributes": true, "verify.identity": false}
}

test_counter_attributes_follow_its_region_identity_stays_national if {
	a := verification.attributes with input as fx.request("counter", "verify.attributes", "population.basic")
		with data.catalog.datasets["population.basic"].regional as true
	a.allow == true
	a.constraints == {"region_prefix": "513221"}
	i := verification.identity with input as fx.request("counter", "verify.identity", "population.basic")
		with data.catalog.datasets["population.basic"].regional as true
	i.allow == true
	i.constraints == {}
}

test_agency_attributes_are_not_region_bound if {
	a := verification.attributes with input as fx.request("agency", "verify.attributes", "population.basic")
		with data.catalog.datasets["population.basic"].regional as true
	a.constraints == {}
}

test_counter_without_valid_region_cannot_verify_regional_attributes if {
	req := object.union(fx.request("counter", "verify.attributes", "population.basic"), {"caller": object.union(fx.caller("counter"), {"region": "x"})})
	a := verification.attributes with input as req
		with data.catalog.datasets["population.basic"].regional as true
	a.reason == "CALLER_REGION_INVALID"
}
