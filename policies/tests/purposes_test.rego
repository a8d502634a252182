package govgw.purposes_test

import rego.v1

import data.govgw.decision
import data.govgw.fixtures_test as fx
import data.govgw.grants
import data.govgw.purposes

test_code_of_stored_forms if {
	purposes.code("household_registration") == "household_registration"
	purposes.code("household_registration (2024)川3221民初123号") == "household_registration"
	purposes.code("other: 为**办理户籍迁入") == "other"
	not purposes.code("household_registrationx")
	not purposes.code("no_such_code")
	not purposes.code("户籍业务办理")
}

test_a_bare_code_grant_serves_every_call_of_that_code if {
	purposes.serves("subsistence_allowance_review", "subsistence_allowance_review (2024)川3221民初1号: 复核")
	purposes.serves("other: 用途甲", "other: 用途甲")
	not purposes.serves("other", "other: 用途甲")
	not purposes.serves("subsistence_allowance_review", "temporary_assistance_review")
}

test_grant_bound_to_a_code_matches_calls_with_text if {
	req := object.union(fx.request("agency", "lookup", "social_assistance.recipient"), {"purpose": "subsistence_allowance_review: 复核材料"})
	g := grants.grant with input as req with data.grants as [fx.grant({"purpose": "subsistence_allowance_review"})]
	g.id == "g-1"
}

plan(kind, action, dataset, purpose) := p if {
	p := decision.plan with input as object.union(fx.request(kind, action, dataset), {"purpose": purpose})
}

test_a_purpose_serves_only_its_caller_kinds_and_datasets if {
	plan("counter", "verify.identity", "population.basic", "credit_supervision").reason == "PURPOSE_NOT_SERVED"
	plan("agency", "lookup", "legal_entity.basic", "household_registration").reason == "PURPOSE_NOT_SERVED"
	plan("counter", "verify.identity", "population.basic", "household_registration").allow
	plan("counter", "verify.identity", "population.basic", "eligibility_review: 复核").allow
	plan("agency", "lookup", "legal_entity.basic", "other: 核对").allow
}

test_another_refusal_keeps_its_reason if {
	plan("public", "verify.identity", "population.basic", "household_registration").reason != "PURPOSE_NOT_SERVED"
}

test_registered_investigation_codes_are_withheld if {
	purposes.withheld with input as {"purpose": "criminal_investigation (2024)川3221刑初5号"}
	not purposes.withheld with input as {"purpose": "household_registration"}
}
