# Caller kinds: agencies (部门) and service counters (窗口) receive shared
# data; the public receives opened data; administrators (策略管理员) manage
# the policy and receive no data.
package govgw.callers

import rego.v1

kinds := {"agency", "counter", "public", "admin"}

# Kinds served under the share classes (R3) rather than the open classes (R6).
sharing_kinds := {"agency", "counter"}

default known := false

known if input.caller.kind in kinds

default sharing := false

sharing if input.caller.kind in sharing_kinds

default public := false

public if input.caller.kind == "public"

default admin := false

admin if input.caller.kind == "admin"
