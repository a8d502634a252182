# Access by application (申请 / 授权, R3, R5, R6): who may apply, decide and
# sweep. Agencies apply for conditional share, public callers for conditional
# open; agencies decide (the gateway checks that the caller is bound to the
# dataset's provider id, which needs the stored application); administrators
# run the sweep of unused grants and may suspend or end a grant. Providers
# (and administrators) read their datasets' usage reports. Every known
# caller may read the applications the gateway shows it (its own, or those it
# must answer).
package govgw.access

import rego.v1

import data.govgw.plans

actions := {"access.apply", "access.read", "access.decide", "access.sweep", "usage.read", "deadlines.read"}

kind := input.caller.kind

# Reached only for the actions above (see govgw.decision).
decision := plans.allow({}) if {
	input.action == "access.read"
}

else := plans.allow({}) if {
	input.action == "access.apply"
	kind in {"agency", "public"}
}

else := plans.deny("APPLICANT_KIND_NOT_ALLOWED", "only agencies (share) and public callers (open) apply for access") if {
	input.action == "access.apply"
}

# Deciding, changing grants, reading a dataset's usage report (R5, R17) and the
# deadlines report (R3; the gateway shows a provider its own datasets' items).
else := plans.allow({}) if {
	input.action in {"access.decide", "usage.read", "deadlines.read"}
	kind in {"agency", "admin"}
}

else := plans.deny("PROVIDER_REQUIRED", "only the providing agency decides applications, changes grants and reads usage and deadlines") if {
	input.action in {"access.decide", "usage.read", "deadlines.read"}
}

else := plans.allow({}) if {
	kind == "admin"
}

else := plans.deny("ADMIN_ROLE_REQUIRED", "the sweep of unused grants is run by an administrator")
