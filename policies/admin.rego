# Policy administration (策略管理): validating, testing, previewing the impact
# of, activating and rolling back these very rules (PolicyAdminService).
# Only callers of kind admin may, and an administrator manages policy without
# reading or verifying personal data (separation of duties).
package govgw.admin

import rego.v1

import data.govgw.plans

actions := {
	"policy.read",
	"policy.validate",
	"policy.test",
	"policy.impact",
	"policy.activate",
	"policy.rollback",
}

# Reached only for the actions above (see govgw.decision).
decision := plans.deny("ADMIN_ROLE_REQUIRED", "policy administration needs a caller of kind admin") if {
	not data.govgw.callers.admin
}

else := plans.allow({})

# Reached for record actions (lookup, verification) by an administrator.
no_data_access := plans.deny("ADMIN_NO_DATA_ACCESS", "administrators manage policy; they do not read or verify records")
