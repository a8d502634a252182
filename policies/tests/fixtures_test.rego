# Shared inputs and data for the policy tests.
package govgw.fixtures_test

import rego.v1

now := "2026-11-21T23:30:00Z"

caller(kind) := {"id": "county-civil-affairs", "kind": kind, "department": "县民政局", "region": "513221"}

# input for `kind` doing `action` on `dataset` for the standard purpose
request(kind, action, dataset) := {
	"caller": caller(kind),
	"action": action,
	"dataset": dataset,
	"purpose": "最低生活保障资格审核",
	"now": now,
}

grant(overrides) := object.union(
	{
		"id": "g-1",
		"caller": "county-civil-affairs",
		"dataset": "social_assistance.recipient",
		"fields": ["name", "monthly_amount", "no_such_field"],
		"purpose": "最低生活保障资格审核",
		"expires_at": "2027-01-01T00:00:00Z",
		"status": "active",
	},
	overrides,
)

# A catalog with a secret field and a field without treatments, to show both never leave.
catalog := {"datasets": {"test.mixed": {
	"share_class": "unconditional",
	"open_class": "unconditional",
	"sensitivity": "internal",
	"regional": false,
	"predicates": ["identity_match", "p1"],
	"fields": [
		{"name": "open_field", "sensitivity": "public", "share": {"operator": "keep"}, "open": {"operator": "keep"}},
		{"name": "secret_field", "sensitivity": "secret", "share": {"operator": "keep"}, "open": {"operator": "keep"}},
		{"name": "untreated", "sensitivity": "internal"},
		{"name": "share_redacted", "sensitivity": "internal", "share": {"operator": "redact"}, "open": {"operator": "keep"}},
	],
}}}

test_fixtures_are_consistent if {
	request("agency", "lookup", "x").caller.kind == "agency"
	grant({}).id == "g-1"
}
