package govgw.opening_test

import rego.v1

import data.govgw.decision
import data.govgw.fixtures_test as fx

plan(kind, action) := p if {
	p := decision.plan with input as fx.request(kind, action, "")
}

test_providers_and_admins_manage_suspensions if {
	every kind in ["agency", "admin"] {
		every action in ["opening.suspend", "opening.read"] {
			plan(kind, action).allow == true
		}
	}
}

test_others_may_not_suspend_an_opening if {
	every kind in ["public", "counter"] {
		every action in ["opening.suspend", "opening.read"] {
			p := plan(kind, action)
			p.allow == false
			p.reason == "PROVIDER_REQUIRED"
		}
	}
}

suspended(status) := {"legal_entity.basic": {"id": "os-1", "status": status}}

test_suspended_opening_denies_the_public_lookup if {
	p := decision.plan with input as fx.request("public", "lookup", "legal_entity.basic")
		with data.suspensions as suspended("suspended")
	p.allow == false
	p.reason == "OPENING_SUSPENDED"
	contains(p.message, "legal_entity.basic")
}

test_withdrawn_opening_denies_the_public_lookup if {
	p := decision.plan with input as fx.request("public", "lookup", "legal_entity.basic")
		with data.suspensions as suspended("withdrawn")
	p.reason == "OPENING_WITHDRAWN"
}

test_a_reopened_or_other_dataset_stays_open if {
	p := decision.plan with input as fx.request("public", "lookup", "legal_entity.basic")
		with data.suspensions as {"population.basic": {"id": "os-2", "status": "suspended"}}
	p.allow == true
	q := decision.plan with input as fx.request("public", "lookup", "legal_entity.basic")
		with data.suspensions as suspended("reopened")
	q.allow == true
}

test_suspension_leaves_sharing_untouched if {
	every kind in ["agency", "counter"] {
		p := decision.plan with input as fx.request(kind, "lookup", "legal_entity.basic")
			with data.suspensions as suspended("suspended")
		p.allow == true
	}
}

test_suspended_opening_denies_public_verification if {
	p := decision.plan with input as fx.request("public", "verify.attributes", "legal_entity.basic")
		with data.suspensions as suspended("suspended")
	p.reason == "OPENING_SUSPENDED"
	q := decision.plan with input as fx.request("agency", "verify.attributes", "legal_entity.basic")
		with data.suspensions as suspended("withdrawn")
	q.allow == true
}

test_deadlines_report_for_providers_and_admins_only if {
	plan("agency", "deadlines.read").allow == true
	plan("admin", "deadlines.read").allow == true
	every kind in ["public", "counter"] {
		plan(kind, "deadlines.read").reason == "PROVIDER_REQUIRED"
	}
}
