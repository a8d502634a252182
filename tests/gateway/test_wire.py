"""The input edge: bytes -> message, or INVALID_ARGUMENT naming the field (table tests)."""

from __future__ import annotations

import pytest
from govgw.v1 import emergency_pb2, policy_admin_pb2, verification_pb2

from gateway import wire
from gateway.errors import GovgwError
from tests.integration.fuzz_cases import delimited, tag, varint


def _ts(seconds: int, nanos: int) -> bytes:
    return tag(1, 0) + varint(seconds) + tag(2, 0) + varint(nanos)


CASES = [
    # (request type, raw bytes, reason, field named)
    (
        verification_pb2.VerifyIdentityRequest,
        delimited(1, b"\xff\xfe"),
        "MALFORMED_REQUEST",
        "name",
    ),
    (
        verification_pb2.VerifyIdentityRequest,
        delimited(1, "张伟".encode()) + delimited(2, b"abc\xc3("),
        "MALFORMED_REQUEST",
        "id_number",
    ),
    (
        verification_pb2.VerifyAttributesRequest,
        delimited(2, delimited(1, b"ok")) + delimited(2, delimited(1, b"\xed\xa0\x80")),
        "MALFORMED_REQUEST",
        "predicates[1].name",
    ),
    (verification_pb2.VerifyIdentityRequest, b"\x0a\x05ab", "MALFORMED_REQUEST", "name"),
    (verification_pb2.VerifyIdentityRequest, b"\xff", "MALFORMED_REQUEST", "request"),
    # An unknown field with a number past 2**29 - 1 is named without echoing the number.
    (
        verification_pb2.VerifyIdentityRequest,
        tag(513221198604120890 % 2**61, 0) + varint(1),
        "MALFORMED_REQUEST",
        "(field out of range)",
    ),
    (
        emergency_pb2.DeclareEmergencyRequest,
        delimited(6, _ts(0, -1)),
        "TIMESTAMP_OUT_OF_RANGE",
        "ends_at",
    ),
    (
        emergency_pb2.DeclareEmergencyRequest,
        delimited(6, _ts(2**62, 0)),
        "TIMESTAMP_OUT_OF_RANGE",
        "ends_at",
    ),
    (
        policy_admin_pb2.ImpactRequest,
        delimited(2, _ts(2**63 - 1, 0)),
        "DURATION_OUT_OF_RANGE",
        "window",
    ),
    (policy_admin_pb2.ImpactRequest, delimited(2, _ts(5, -3)), "DURATION_OUT_OF_RANGE", "window"),
]


@pytest.mark.parametrize(("message_type", "raw", "reason", "field"), CASES)
def test_bad_bytes_name_their_field(message_type, raw, reason, field) -> None:
    with pytest.raises(GovgwError) as e:
        wire.decode(message_type, raw)
    assert e.value.reason == reason
    assert [v.field for v in e.value.violations] == [field]


def test_good_bytes_decode_and_in_range_times_pass() -> None:
    msg = verification_pb2.VerifyIdentityRequest(name="张伟", id_number="x", purpose="p")
    assert wire.decode(type(msg), msg.SerializeToString()) == msg
    raw = delimited(6, _ts(1_900_000_000, 999_999_999))
    assert wire.decode(emergency_pb2.DeclareEmergencyRequest, raw).ends_at.nanos == 999_999_999


def test_a_report_period_ending_in_year_one_is_refused_not_overflowed() -> None:
    """Valid Timestamps at the edge of the range: `until - default` must not overflow."""
    from datetime import UTC, datetime, timedelta

    from govgw.v1 import usage_pb2

    from gateway import validation

    r = usage_pb2.GetUsageReportRequest()
    r.until.FromDatetime(datetime(1, 1, 5))
    with pytest.raises(GovgwError) as e:
        validation.period(r, datetime.now(UTC), timedelta(days=30), timedelta(days=366), "a year")
    assert (e.value.reason, [v.field for v in e.value.violations]) == ("PERIOD_INVALID", ["until"])
