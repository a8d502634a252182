# Suspending the opening of a whole dataset on a security risk (撤回, R9; Aba
# 2024 art. 33): who may suspend, withdraw and reopen, and read suspensions.
# Providers (the gateway checks that the caller is bound to the dataset's
# provider id) and administrators. The effect on the open route is decided in
# govgw.open from data.suspensions.
package govgw.opening

import rego.v1

import data.govgw.plans

actions := {"opening.suspend", "opening.read"}

# Reached only for the actions above (see govgw.decision).
decision := plans.allow({}) if {
	input.caller.kind in {"agency", "admin"}
}

else := plans.deny("PROVIDER_REQUIRED", "only the providing agency or an administrator suspends, withdraws and reopens a dataset's opening")
