package govgw.open_test

import rego.v1

import data.govgw.fixtures_test as fx
import data.govgw.open

test_unconditional_open_uses_open_treatments if {
	p := open.lookup with input as fx.request("public", "lookup", "legal_entity.basic")
	p.allow == true
	p.fields.legal_representative == {"operator": "mask", "params": {"keep_first": 1, "keep_last": 0}}
	p.fields.uscc == {"operator": "keep", "params": {}}
	count(p.fields) == 7
	p.obligations.reveal_existence == false
	p.obligations.rate_tier == "public"
	p.constraints == {}
}

test_open_redact_leaves_field_out if {
	p := open.lookup with input as fx.request("public", "lookup", "population.basic")
		with data.catalog.datasets["population.basic"].open_class as "unconditional"
	p.allow == true
	not p.fields.id_number
	not p.fields.phone
	not p.fields.ethnicity
	p.fields.birth_date == {"operator": "generalize", "params": {"kind": "birth_date", "level": "year"}}
}

test_secret_and_untreated_fields_never_opened if {
	p := open.lookup with input as fx.request("public", "lookup", "test.mixed")
		with data.catalog as fx.catalog
	object.keys(p.fields) == {"open_field", "share_redacted"}
}

test_public_on_regional_dataset_has_no_region_constraint if {
	p := open.lookup with input as fx.request("public", "lookup", "population.basic")
		with data.catalog.datasets["population.basic"].open_class as "unconditional"
	p.constraints == {}
}

test_conditional_open_needs_grant if {
	p := open.lookup with input as fx.request("public", "lookup", "credit.record")
		with data.grants as []
	p.reason == "GRANT_REQUIRED"
}

test_conditional_open_with_grant_uses_open_treatments if {
	g := fx.grant({"dataset": "credit.record", "fields": ["uscc", "content", "status"]})
	p := open.lookup with input as fx.request("public", "lookup", "credit.record")
		with data.grants as [g]
	p.allow == true
	object.keys(p.fields) == {"uscc", "status"} # content's open treatment is redact
	p.grant_id == "g-1"
	p.obligations.reveal_existence == false
}

test_conditional_open_with_expired_grant if {
	g := fx.grant({"dataset": "credit.record", "expires_at": "2025-01-01T00:00:00Z"})
	p := open.lookup with input as fx.request("public", "lookup", "credit.record")
		with data.grants as [g]
	p.reason == "GRANT_EXPIRED"
}

test_none_class_is_not_open if {
	p := open.lookup with input as fx.request("public", "lookup", "population.basic")
	p.allow == false
	p.reason == "DATASET_NOT_OPEN"
}
