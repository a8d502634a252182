# What a data subject may see of the uses of their data (R8; Aba 2024 art. 20).
#
# The gateway asks once per kind of audited use (caller kind, department,
# dataset, action, purpose: never per record) with action "subject.disclose";
# `input.use.action` is the audited action. Allowed: listed. Denied with
# HIDDEN_BY_LAW: left out silently, as Estonia's Data Tracker leaves out the
# queries of investigating authorities: telling a person that the police or
# state security looked them up would defeat the investigation, which the law
# keeps confidential (a personal-information processor need not inform where a
# law requires confidentiality: 个人信息保护法 第十八条).
package govgw.subject_access

import rego.v1

import data.govgw.plans

# Departments whose investigations the law keeps from their subject.
investigating_departments := ["公安局", "公安厅", "国家安全局", "国家安全厅"]

# Purposes that name an investigation.
investigation_words := ["侦查", "侦办", "国家安全"]

investigating_department if {
	input.caller.kind == "agency"
	some suffix in investigating_departments
	endswith(input.caller.department, suffix)
}

investigation_purpose if {
	some word in investigation_words
	contains(input.purpose, word)
}

# A registered purpose marked withheld_from_subject (criminal_investigation, national_security).
investigation_purpose if data.govgw.purposes.withheld

hidden if {
	investigating_department
	investigation_purpose
}

disclosure := plans.deny("HIDDEN_BY_LAW", "this use is withheld from the subject by law") if {
	hidden
}

else := plans.allow({})
