package govgw.conflicts_test

import rego.v1

import data.govgw.decision
import data.govgw.fixtures_test as fx

plan(kind) := p if {
	p := decision.plan with input as fx.request(kind, "conflicts.read", "")
}

test_administrators_read_the_conflicts_report if {
	p := plan("admin")
	p.allow == true
	p.fields == {}
}

test_no_other_kind_reads_it if {
	every kind in ["agency", "counter", "public"] {
		plan(kind).allow == false
		plan(kind).reason == "COORDINATOR_REQUIRED"
	}
}

test_an_unknown_caller_kind_is_refused_first if {
	plan("robot").reason == "CALLER_KIND_UNKNOWN"
}
