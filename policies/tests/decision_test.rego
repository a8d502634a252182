package govgw.decision_test

import rego.v1

import data.govgw.decision
import data.govgw.fixtures_test as fx

test_unknown_caller_kind_denied if {
	p := decision.plan with input as fx.request("robot", "lookup", "population.basic")
	p.allow == false
	p.reason == "CALLER_KIND_UNKNOWN"
}

test_missing_caller_denied if {
	p := decision.plan with input as {"action": "catalog.read", "dataset": ""}
	p.reason == "CALLER_KIND_UNKNOWN"
}

test_unknown_action_denied if {
	p := decision.plan with input as fx.request("agency", "delete", "population.basic")
	p.allow == false
	p.reason == "ACTION_UNKNOWN"
}

test_unknown_dataset_denied if {
	every action in ["lookup", "verify.identity", "verify.attributes"] {
		p := decision.plan with input as fx.request("agency", action, "no.such.dataset")
		p.reason == "UNKNOWN_DATASET"
	}
}

test_empty_dataset_denied_for_record_actions if {
	p := decision.plan with input as fx.request("agency", "lookup", "")
	p.reason == "UNKNOWN_DATASET"
}

test_caller_kind_checked_before_action if {
	p := decision.plan with input as fx.request("robot", "delete", "no.such.dataset")
	p.reason == "CALLER_KIND_UNKNOWN"
}

test_catalog_and_keys_read_by_every_kind if {
	every kind in ["agency", "counter", "public"] {
		every action in ["catalog.read", "keys.read"] {
			p := decision.plan with input as fx.request(kind, action, "")
			p.allow == true
			p.fields == {}
			p.predicates == []
		}
	}
}

test_metadata_read_ignores_dataset if {
	p := decision.plan with input as fx.request("public", "catalog.read", "no.such.dataset")
	p.allow == true
}

test_routes_lookup_by_kind if {
	share := decision.plan with input as fx.request("agency", "lookup", "population.basic")
	share.allow == true
	opened := decision.plan with input as fx.request("public", "lookup", "population.basic")
	opened.reason == "DATASET_NOT_OPEN"
}

test_default_denies_when_nothing_decides if {
	# a dataset whose share class the policy does not know: no rule decides
	p := decision.plan with input as fx.request("agency", "lookup", "test.mixed")
		with data.catalog as {"datasets": {"test.mixed": {"share_class": "maybe", "fields": []}}}
	p == {"allow": false, "reason": "POLICY_DENIED", "message": "no policy rule decided this request"}
}

test_plan_shape_is_complete if {
	p := decision.plan with input as fx.request("agency", "catalog.read", "")
	object.keys(p) == {"allow", "reason", "message", "fields", "predicates", "constraints", "obligations", "grant_id", "expires_at"}
	object.keys(p.obligations) == {"receipt", "audit_level", "rate_tier", "reveal_existence"}
}
