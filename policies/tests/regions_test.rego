package govgw.regions_test

import rego.v1

import data.govgw.regions

test_prefix_strips_trailing_zero_pairs if {
	regions.prefix("513221") == "513221"
	regions.prefix("513200") == "5132"
	regions.prefix("510000") == "51"
	regions.prefix("513000") == "5130"
	regions.prefix("513220") == "513220"
}

test_valid_region_codes if {
	regions.valid("513221")
	not regions.valid("51322")
	not regions.valid("5132211")
	not regions.valid("000000")
	not regions.valid("51322a")
}
