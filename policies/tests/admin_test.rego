package govgw.admin_test

import rego.v1

import data.govgw.admin
import data.govgw.decision
import data.govgw.fixtures_test as fx

test_admin_may_administer_policy if {
	every action in admin.actions {
		p := decision.plan with input as fx.request("admin", action, "")
		p.allow == true
		p.fields == {}
		p.predicates == []
	}
}

test_other_kinds_may_not_administer_policy if {
	every kind in ["agency", "counter", "public"] {
		every action in admin.actions {
			p := decision.plan with input as fx.request(kind, action, "")
			p.allow == false
			p.reason == "ADMIN_ROLE_REQUIRED"
		}
	}
}

test_admin_reads_no_records if {
	every action in ["lookup", "verify.identity", "verify.attributes"] {
		p := decision.plan with input as fx.request("admin", action, "population.basic")
		p.allow == false
		p.reason == "ADMIN_NO_DATA_ACCESS"
	}
}

test_admin_may_read_the_catalog if {
	p := decision.plan with input as fx.request("admin", "catalog.read", "")
	p.allow == true
}

test_unknown_kind_still_denied_before_admin_checks if {
	p := decision.plan with input as fx.request("robot", "policy.activate", "")
	p.reason == "CALLER_KIND_UNKNOWN"
}
