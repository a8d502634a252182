"""Hostile requests for any protobuf method, derived from its descriptor.

For a request type the generator yields wire-format byte strings, each an
empty request with one field made hostile: invalid UTF-8 in every string
field, Timestamps and Durations out of range, extreme integers and enum
values, 100,000-item repeated fields, nested one level deep; plus random
bytes. A new RPC is covered by these cases without a test of its own.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

from google.protobuf.descriptor import Descriptor, FieldDescriptor

F = FieldDescriptor
BAD_UTF8 = (b"\xff\xfe", b"abc\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")
INTS = (-1, -(2**31), 2**31 - 1, 2**63 - 1, 2**64 - 1, -(2**63))
VARINT_TYPES = {
    F.TYPE_INT32,
    F.TYPE_INT64,
    F.TYPE_UINT32,
    F.TYPE_UINT64,
    F.TYPE_SINT32,
    F.TYPE_SINT64,
    F.TYPE_ENUM,
    F.TYPE_BOOL,
}
TIME_CASES = {
    # Out of range, and the extremes of the range (0001-01-01, 9999-12-31T23:59:59.999999999):
    # valid values that arithmetic on them can still overflow.
    "google.protobuf.Timestamp": (
        (2**63 - 1, 0),
        (0, -1),
        (0, 10**9),
        (-(2**62), 0),
        (-1, 0),
        (-62_135_596_800, 0),
        (-62_135_596_800 + 86_400 * 40, 0),
        (253_402_300_799, 999_999_999),
    ),
    "google.protobuf.Duration": (
        (2**63 - 1, 0),
        (0, 10**9),
        (5, -3),
        (-(2**63), 0),
        (315_576_000_000, 0),
        (-315_576_000_000, 0),
    ),
}
BIG = 100_000


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative values as ten-byte two's complement, as protobuf does
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def delimited(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def _time(seconds: int, nanos: int) -> bytes:
    return tag(1, 0) + varint(seconds) + tag(2, 0) + varint(nanos)


def field_cases(f: FieldDescriptor, depth: int) -> Iterator[tuple[str, bytes]]:
    """(label, bytes of this field alone) for one field."""
    n = f.number
    if f.type == F.TYPE_STRING:
        for bad in BAD_UTF8:
            yield f"{f.name}: invalid utf-8", delimited(n, bad)
        yield f"{f.name}: 1 MB", delimited(n, b"9" * 1_000_000)
    elif f.type == F.TYPE_BYTES:
        yield f"{f.name}: 1 MB", delimited(n, b"\0" * 1_000_000)
    elif f.type in VARINT_TYPES:
        for v in INTS:
            yield f"{f.name}={v}", tag(n, 0) + varint(v)
    elif f.type in (F.TYPE_DOUBLE, F.TYPE_FIXED64, F.TYPE_SFIXED64):
        for v in (float("nan"), float("inf"), -1e308):
            yield f"{f.name}={v}", tag(n, 1) + struct.pack("<d", v)
    elif f.type in (F.TYPE_FLOAT, F.TYPE_FIXED32, F.TYPE_SFIXED32):
        for v in (float("nan"), float("-inf")):
            yield f"{f.name}={v}", tag(n, 5) + struct.pack("<f", v)
    elif f.type == F.TYPE_MESSAGE:
        times = TIME_CASES.get(f.message_type.full_name)
        if times is not None:
            for s, ns in times:
                yield f"{f.name}=({s}s,{ns}ns)", delimited(n, _time(s, ns))
        elif depth < 2 and not f.message_type.GetOptions().map_entry:
            for label, inner in message_cases(f.message_type, depth + 1):
                yield f"{f.name}.{label}", delimited(n, inner)
    if f.is_repeated:
        if f.type == F.TYPE_STRING:
            one = delimited(n, b"1")
        elif f.type == F.TYPE_MESSAGE:
            one = delimited(n, b"")
        elif f.type in VARINT_TYPES:
            one = tag(n, 0) + varint(1)
        else:
            return
        yield f"{f.name}: {BIG} items", one * BIG


def message_cases(desc: Descriptor, depth: int = 0) -> Iterator[tuple[str, bytes]]:
    for f in desc.fields:
        yield from field_cases(f, depth)


def request_cases(
    desc: Descriptor, rng: random.Random, randoms: int = 4
) -> list[tuple[str, bytes]]:
    cases = [("empty", b"")]
    cases += list(message_cases(desc))
    # Unknown fields: the largest valid number, and numbers past it whose digits read
    # like an ID number or a phone (never to be echoed into a reply or the trail).
    cases += [
        ("unknown field 2**29-1", tag(2**29 - 1, 0) + varint(1)),
        ("field number like an ID", tag(513221198604120890 % 2**61, 2) + varint(3) + b"abc"),
        ("field number like a phone", tag(13648530186, 0) + varint(7)),
    ]
    for _ in range(randoms):
        size = rng.choice((1, 3, 16, 200, 4096))
        cases.append((f"random {size} bytes", rng.randbytes(size)))
    return cases
