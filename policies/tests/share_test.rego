package govgw.share_test

import rego.v1

import data.govgw.decision
import data.govgw.fixtures_test as fx
import data.govgw.share

test_unconditional_agency_gets_every_non_secret_field_with_share_treatment if {
	p := share.lookup with input as fx.request("agency", "lookup", "population.basic")
	p.allow == true
	p.fields.phone == {"operator": "mask", "params": {"keep_first": 3, "keep_last": 4}}
	p.fields.name == {"operator": "keep", "params": {}}
	p.fields.household_address.operator == "generalize"
	count(p.fields) == 8
	p.constraints == {}
	p.obligations.reveal_existence == true
	p.obligations.receipt == false
	p.obligations.rate_tier == "standard"
	p.grant_id == ""
	p.expires_at == ""
}

test_secret_untreated_and_redacted_fields_never_shared if {
	p := share.lookup with input as fx.request("agency", "lookup", "test.mixed")
		with data.catalog as fx.catalog
	object.keys(p.fields) == {"open_field"}
}

test_counter_on_regional_dataset_is_scoped_to_its_region if {
	p := share.lookup with input as fx.request("counter", "lookup", "population.basic")
	p.allow == true
	p.constraints == {"region_prefix": "513221"}
}

test_prefecture_counter_scoped_to_prefecture if {
	inp := json.patch(fx.request("counter", "lookup", "population.basic"), [{"op": "replace", "path": "/caller/region", "value": "513200"}])
	p := share.lookup with input as inp
	p.constraints == {"region_prefix": "5132"}
}

test_counter_on_national_dataset_unscoped if {
	p := share.lookup with input as fx.request("counter", "lookup", "legal_entity.basic")
	p.allow == true
	p.constraints == {}
}

test_agency_on_regional_dataset_unscoped if {
	p := share.lookup with input as fx.request("agency", "lookup", "population.basic")
	p.constraints == {}
}

test_counter_without_valid_region_denied_on_regional_dataset if {
	every region in ["", "5132", "51320x", "013221"] {
		inp := json.patch(fx.request("counter", "lookup", "population.basic"), [{"op": "replace", "path": "/caller/region", "value": region}])
		p := share.lookup with input as inp
		p.reason == "CALLER_REGION_INVALID"
	}
}

test_conditional_without_grant_requires_one if {
	p := share.lookup with input as fx.request("agency", "lookup", "social_assistance.recipient")
		with data.grants as []
	p.allow == false
	p.reason == "GRANT_REQUIRED"
}

test_conditional_with_grant_releases_granted_fields_only if {
	p := share.lookup with input as fx.request("agency", "lookup", "social_assistance.recipient")
		with data.grants as [fx.grant({})]
	p.allow == true
	object.keys(p.fields) == {"name", "monthly_amount"}
	p.fields.name == {"operator": "mask", "params": {"keep_first": 1, "keep_last": 0}}
	p.grant_id == "g-1"
	p.expires_at == "2027-01-01T00:00:00Z"
}

test_conditional_grant_for_counter_keeps_region_scope if {
	p := share.lookup with input as fx.request("counter", "lookup", "social_assistance.recipient")
		with data.grants as [fx.grant({})]
	p.allow == true
	p.constraints == {"region_prefix": "513221"}
}

test_conditional_with_expired_grant if {
	p := share.lookup with input as fx.request("agency", "lookup", "social_assistance.recipient")
		with data.grants as [fx.grant({"expires_at": "2026-11-21T23:30:00Z"})]
	p.reason == "GRANT_EXPIRED"
}

test_none_class_is_not_shared if {
	p := share.lookup with input as fx.request("agency", "lookup", "population.basic")
		with data.catalog.datasets["population.basic"].share_class as "none"
	p.allow == false
	p.reason == "DATASET_NOT_SHARED"
	contains(p.message, "population.basic")
}

test_share_lookup_reached_through_decision if {
	p := decision.plan with input as fx.request("counter", "lookup", "social_assistance.recipient")
		with data.grants as [fx.grant({})]
	p.grant_id == "g-1"
}
