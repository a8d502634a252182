# The conflicts report (R16; Aba 2021 art. 29, Aba 2024 art. 26): values two
# providers hold differently for one subject, listed for the coordinating
# department, the big-data bureau's administrators. Not for the providers
# themselves: the report compares one provider's data with another's, which
# neither may see.
package govgw.conflicts

import rego.v1

import data.govgw.plans

actions := {"conflicts.read"}

# Reached only for the actions above (see govgw.decision).
decision := plans.allow({}) if {
	data.govgw.callers.admin
}

else := plans.deny("COORDINATOR_REQUIRED", "the conflicts report is for the coordinating department (callers of kind admin)")
