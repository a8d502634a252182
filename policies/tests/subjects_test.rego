package govgw.subjects_test

import rego.v1

import data.govgw.decision
import data.govgw.fixtures_test as fx

plan(kind, action) := p if {
	p := decision.plan with input as fx.request(kind, action, "")
}

test_citizen_app_and_counter_carry_subject_calls if {
	every action in ["subject.usage", "subject.correct", "subject.withdraw", "subject.read", "subject.records"] {
		plan("public", action).allow == true
		plan("counter", action).allow == true
		plan("agency", action).reason == "SUBJECT_CHANNEL_REQUIRED"
		plan("admin", action).reason == "SUBJECT_CHANNEL_REQUIRED"
	}
}

test_own_records_are_for_the_subjects_channels_only if {
	# per dataset too: the service decides one plan per dataset it reads
	every ds in ["population.basic", "legal_entity.basic", "social_assistance.recipient"] {
		p := decision.plan with input as fx.request("public", "subject.records", ds)
		p.allow == true
		p.fields == {}
		q := decision.plan with input as fx.request("agency", "subject.records", ds)
		q.reason == "SUBJECT_CHANNEL_REQUIRED"
	}
}

test_agencies_answer if {
	plan("agency", "subject.review").allow == true
	every kind in ["public", "counter", "admin"] {
		plan(kind, "subject.review").reason == "PROVIDER_REQUIRED"
	}
}

test_subject_plans_release_nothing if {
	p := plan("public", "subject.usage")
	p.fields == {}
	p.predicates == []
}

disclosure(kind, department, purpose) := p if {
	p := decision.plan with input as {
		"caller": {"id": "", "kind": kind, "department": department, "region": ""},
		"action": "subject.disclose",
		"dataset": "population.basic",
		"purpose": purpose,
		"use": {"action": "lookup"},
		"now": fx.now,
	}
}

test_investigations_are_hidden_by_law if {
	disclosure("agency", "松潘县公安局", "刑事案件侦查").reason == "HIDDEN_BY_LAW"
	disclosure("agency", "阿坝州国家安全局", "维护国家安全调查").reason == "HIDDEN_BY_LAW"
	disclosure("agency", "四川省公安厅", "案件侦办").reason == "HIDDEN_BY_LAW"
	# registered investigation codes, as the gateway stores them
	disclosure("agency", "松潘县公安局", "criminal_investigation").reason == "HIDDEN_BY_LAW"
	disclosure("agency", "阿坝州国家安全局", "national_security: 协查").reason == "HIDDEN_BY_LAW"
}

test_other_uses_are_shown if {
	# the police on ordinary duties (户籍办理) are shown
	disclosure("agency", "松潘县公安局", "户籍迁移办理").allow == true
	# an investigation word from a department that does not investigate is shown
	disclosure("agency", "汶川县民政局", "侦查协查函回复").allow == true
	# a counter or the public is never hidden, whatever its department says
	disclosure("counter", "汶川县公安局", "刑事案件侦查").allow == true
	disclosure("agency", "汶川县民政局", "最低生活保障资格审核").allow == true
}
