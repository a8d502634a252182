package govgw.emergency_test

import rego.v1

import data.govgw.decision
import data.govgw.fixtures_test as fx

ds := "social_assistance.recipient"

ends := "2026-11-25T00:00:00Z"

emergency(overrides) := object.union(
	{
		"id": "em-1",
		"status": "active",
		"agencies": ["county-civil-affairs"],
		"scope": {ds: ["name", "assistance_type"]},
		"ends_at": ends,
	},
	overrides,
)

# The grant a declaration creates; it names a field the scope does not, to show
# that the scope, not the grant, bounds what leaves.
em_grant := fx.grant({
	"id": "g-em",
	"emergency_id": "em-1",
	"fields": ["name", "assistance_type", "monthly_amount"],
	"expires_at": ends,
})

lookup_with(emergencies) := object.union(fx.request("agency", "lookup", ds), {"emergencies": emergencies})

plan(kind, action) := p if {
	p := decision.plan with input as fx.request(kind, action, "")
}

test_admins_may_do_every_emergency_action if {
	every action in ["emergency.declare", "emergency.end", "emergency.read", "emergency.sealing", "emergency.seal"] {
		plan("admin", action).allow == true
	}
}

test_only_admins_declare_end_seal_and_read_sealing_lists if {
	every action in ["emergency.declare", "emergency.end", "emergency.sealing", "emergency.seal"] {
		every kind in ["agency", "counter", "public"] {
			plan(kind, action).reason == "ADMIN_ROLE_REQUIRED"
		}
	}
}

test_agencies_read_emergencies_counters_and_public_do_not if {
	plan("agency", "emergency.read").allow == true
	plan("counter", "emergency.read").reason == "AGENCY_OR_ADMIN_REQUIRED"
	plan("public", "emergency.read").reason == "AGENCY_OR_ADMIN_REQUIRED"
}

test_emergency_actions_release_nothing if {
	p := decision.plan with input as fx.request("admin", "emergency.declare", ds)
	p.allow == true
	p.fields == {}
}

test_designated_agency_gets_the_scoped_fields_masked_per_catalog if {
	p := decision.plan with input as lookup_with([emergency({})]) with data.grants as [em_grant]
	p.allow == true
	object.keys(p.fields) == {"name", "assistance_type"}
	p.fields.name == {"operator": "mask", "params": {"keep_first": 1, "keep_last": 0}}
	p.fields.assistance_type.operator == "keep"
	p.grant_id == "g-em"
	p.obligations.emergency_id == "em-1"
	p.obligations.reveal_existence == true
	p.expires_at == ends
}

test_emergency_grant_is_not_in_force_without_its_emergency if {
	p := decision.plan with input as fx.request("agency", "lookup", ds) with data.grants as [em_grant]
	p.reason == "GRANT_REQUIRED"
}

test_ended_other_or_past_emergency_does_not_widen if {
	every e in [
		emergency({"status": "ended"}),
		emergency({"id": "em-2"}),
		emergency({"agencies": ["someone-else"]}),
		json.patch(emergency({}), [{"op": "replace", "path": "/scope", "value": {"population.basic": ["name"]}}]),
		emergency({"ends_at": fx.now}),
	] {
		p := decision.plan with input as lookup_with([e]) with data.grants as [em_grant]
		p.reason == "GRANT_REQUIRED"
	}
}

test_grant_past_its_expiry_is_expired_even_in_an_emergency if {
	g := object.union(em_grant, {"expires_at": fx.now})
	p := decision.plan with input as lookup_with([emergency({})]) with data.grants as [g]
	p.reason == "GRANT_EXPIRED"
}

test_plan_ends_with_whichever_ends_first if {
	later := object.union(em_grant, {"expires_at": "2027-01-01T00:00:00Z"})
	p := decision.plan with input as lookup_with([emergency({})]) with data.grants as [later]
	p.expires_at == ends
	earlier := object.union(em_grant, {"expires_at": "2026-11-23T00:00:00Z"})
	q := decision.plan with input as lookup_with([emergency({})]) with data.grants as [earlier]
	q.expires_at == "2026-11-23T00:00:00Z"
}

test_ordinary_grant_plan_names_no_emergency if {
	p := decision.plan with input as lookup_with([emergency({})]) with data.grants as [fx.grant({})]
	p.allow == true
	p.grant_id == "g-1"
	not p.obligations.emergency_id
}
