"""Request metadata both sides name: who at the caller made the call.

A service hall is one counter caller (one API key, held by the hall's web
server); each clerk signs in there and the clerk's username travels with each
call in `OPERATOR_HEADER`, so the audit trail names the person who made the
check and the enumeration monitor can suspend one clerk, not the hall. An
operator is a caller's own account name, not a data subject's: no personal
data of a citizen, but still kept out of metric labels.
"""

from __future__ import annotations

import re

OPERATOR_HEADER = "x-govgw-operator"
# 1-64 characters: letters, digits and . _ @ - (an account name or an e-mail-like id).
OPERATOR_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
# Callers whose systems have users of their own: a hall's clerks, an agency's staff.
OPERATOR_KINDS = ("counter", "agency")
