package govgw.grants_test

import rego.v1

import data.govgw.fixtures_test as fx
import data.govgw.grants

req := fx.request("agency", "lookup", "social_assistance.recipient")

test_grant_matches_caller_dataset_and_purpose if {
	g := grants.grant with input as req with data.grants as [fx.grant({})]
	g.id == "g-1"
}

test_other_caller_dataset_or_purpose_does_not_match if {
	every change in [{"caller": "someone-else"}, {"dataset": "population.basic"}, {"purpose": "别的用途"}] {
		count(grants.matching) == 0 with input as req with data.grants as [fx.grant(change)]
	}
}

test_purpose_match_is_exact if {
	count(grants.matching) == 0 with input as json.patch(req, [{"op": "replace", "path": "/purpose", "value": "最低生活保障资格审核 "}])
		with data.grants as [fx.grant({})]
}

test_revoked_and_suspended_grants_are_not_usable if {
	every status in ["revoked", "suspended", "pending"] {
		d := grants.denial with input as req with data.grants as [fx.grant({"status": status})]
		d.reason == "GRANT_REQUIRED"
	}
}

test_grant_expiring_exactly_now_is_expired if {
	d := grants.denial with input as req with data.grants as [fx.grant({"expires_at": fx.now})]
	d.reason == "GRANT_EXPIRED"
}

test_expiry_compares_instants_not_strings if {
	# 2026-11-22T08:00:00+08:00 is 2026-11-22T00:00Z: after now (23:30Z), so still valid
	g := grants.grant with input as req with data.grants as [fx.grant({"expires_at": "2026-11-22T08:00:00+08:00"})]
	g.id == "g-1"
}

test_malformed_expiry_is_never_usable if {
	d := grants.denial with input as req with data.grants as [fx.grant({"expires_at": "next year"})]
	d.reason == "GRANT_REQUIRED"
}

test_expired_beside_a_valid_grant_is_ignored if {
	gs := [fx.grant({"id": "g-old", "expires_at": "2020-01-01T00:00:00Z"}), fx.grant({})]
	g := grants.grant with input as req with data.grants as gs
	g.id == "g-1"
	not grants.denial with input as req with data.grants as gs
}

test_longest_lived_grant_wins if {
	gs := [fx.grant({"id": "g-a"}), fx.grant({"id": "g-b", "expires_at": "2028-01-01T00:00:00Z"})]
	g := grants.grant with input as req with data.grants as gs
	g.id == "g-b"
}

test_tie_broken_by_smallest_id if {
	gs := [fx.grant({"id": "g-b"}), fx.grant({"id": "g-a"})]
	g := grants.grant with input as req with data.grants as gs
	g.id == "g-a"
}

test_no_grants_data_requires_grant if {
	d := grants.denial with input as req
	d.reason == "GRANT_REQUIRED"
}

test_fields_are_intersection_of_grant_and_released if {
	f := grants.fields({"name": {"operator": "keep", "params": {}}, "phone": {"operator": "keep", "params": {}}}) with input as req
		with data.grants as [fx.grant({"fields": ["name", "ghost"]})]
	f == {"name": {"operator": "keep", "params": {}}}
}
