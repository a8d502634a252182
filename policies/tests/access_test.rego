package govgw.access_test

import rego.v1

import data.govgw.decision
import data.govgw.fixtures_test as fx

plan(kind, action) := p if {
	p := decision.plan with input as fx.request(kind, action, "")
}

test_every_kind_reads_applications if {
	every kind in ["agency", "counter", "public", "admin"] {
		plan(kind, "access.read").allow == true
	}
}

test_agencies_and_public_apply if {
	plan("agency", "access.apply").allow == true
	plan("public", "access.apply").allow == true
	plan("counter", "access.apply").reason == "APPLICANT_KIND_NOT_ALLOWED"
	plan("admin", "access.apply").reason == "APPLICANT_KIND_NOT_ALLOWED"
}

test_agencies_and_admins_decide if {
	plan("agency", "access.decide").allow == true
	plan("admin", "access.decide").allow == true
	plan("public", "access.decide").reason == "PROVIDER_REQUIRED"
	plan("counter", "access.decide").reason == "PROVIDER_REQUIRED"
}

test_only_admins_sweep if {
	plan("admin", "access.sweep").allow == true
	every kind in ["agency", "counter", "public"] {
		plan(kind, "access.sweep").reason == "ADMIN_ROLE_REQUIRED"
	}
}

test_access_plans_release_nothing if {
	p := decision.plan with input as fx.request("agency", "access.apply", "social_assistance.recipient")
	p.allow == true
	p.fields == {}
}

test_agencies_and_admins_read_usage if {
	plan("agency", "usage.read").allow == true
	plan("admin", "usage.read").allow == true
	plan("public", "usage.read").reason == "PROVIDER_REQUIRED"
}
