"""The input edge: raw request bytes -> a protobuf message whose every value is in range.

The pipeline calls `decode` after authentication, for every route, so no
RPC can forget it and no framework deserializer fails with a traceback:

- bytes that do not decode, or a string field holding invalid UTF-8, are
  INVALID_ARGUMENT MALFORMED_REQUEST naming the field where the bytes go
  wrong (found by walking the wire format against the descriptor, since
  protobuf's own error does not say);
- a Timestamp outside years 1-9999 or with nanos outside [0, 1e9), and a
  Duration beyond +-10,000 years or with nanos out of range or of the other
  sign, are TIMESTAMP_OUT_OF_RANGE / DURATION_OUT_OF_RANGE naming the field
  (the well-known types' own range, which their conversions assume).

Message types that hold no Timestamp or Duration anywhere are not walked:
the check costs nothing on the verification hot path.
"""

from __future__ import annotations

from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from gateway.errors import invalid

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
# google/protobuf/timestamp.proto: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_S = -62_135_596_800
MAX_TIMESTAMP_S = 253_402_300_799
# google/protobuf/duration.proto: about +-10,000 years.
MAX_DURATION_S = 315_576_000_000
NANOS = 1_000_000_000
MAX_FIELD_NUMBER = 2**29 - 1


def decode(message_type: type[Message], raw: bytes) -> Message:
    """The message, or INVALID_ARGUMENT naming the field at fault."""
    msg = message_type()
    try:
        msg.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError):
        where = _locate(message_type.DESCRIPTOR, raw, "") or "request"
        raise invalid(
            where,
            f"is not a valid {message_type.DESCRIPTOR.name} encoding (bad bytes or invalid UTF-8)",
            "MALFORMED_REQUEST",
        ) from None
    if _has_times(message_type.DESCRIPTOR):
        _check_times(msg, "")
    return msg


# --- well-known time types ---------------------------------------------------------------


@cache
def _has_times(desc: Descriptor) -> bool:
    return _contains_times(desc, set())


def _contains_times(desc: Descriptor, seen: set[str]) -> bool:
    if desc.full_name in (TIMESTAMP, DURATION):
        return True
    seen.add(desc.full_name)
    return any(
        f.message_type is not None
        and f.message_type.full_name not in seen
        and _contains_times(f.message_type, seen)
        for f in desc.fields
    )


def _check_times(msg: Message, prefix: str) -> None:
    for f, value in msg.ListFields():
        if f.message_type is None or f.message_type.GetOptions().map_entry:
            continue
        path = f"{prefix}{f.name}"
        items = value if f.is_repeated else [value]
        for i, item in enumerate(items):
            at = f"{path}[{i}]" if f.is_repeated else path
            name = f.message_type.full_name
            if name == TIMESTAMP:
                _timestamp(item, at)
            elif name == DURATION:
                _duration(item, at)
            elif _has_times(f.message_type):
                _check_times(item, f"{at}.")


def _timestamp(ts: Message, path: str) -> None:
    if not MIN_TIMESTAMP_S <= ts.seconds <= MAX_TIMESTAMP_S or not 0 <= ts.nanos < NANOS:  # type: ignore[attr-defined]
        raise invalid(
            path,
            "must be a time in years 1 to 9999 with nanos in [0, 999999999]",
            "TIMESTAMP_OUT_OF_RANGE",
        )


def _duration(d: Message, path: str) -> None:
    s, n = d.seconds, d.nanos  # type: ignore[attr-defined]
    if abs(s) > MAX_DURATION_S or abs(n) >= NANOS or (s > 0 > n) or (s < 0 < n):
        raise invalid(
            path,
            "must be within +-10000 years, nanos below 1e9 and of the seconds' sign",
            "DURATION_OUT_OF_RANGE",
        )


# --- locating malformed bytes --------------------------------------------------------------


class _Truncated(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Truncated
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _locate(desc: Descriptor, buf: bytes, prefix: str) -> str:
    """The path of the first field whose bytes are malformed, or "" if none is found."""
    counts: dict[int, int] = {}
    pos = 0
    try:
        while pos < len(buf):
            tag, pos = _varint(buf, pos)
            number, wire_type = tag >> 3, tag & 7
            f = desc.fields_by_number.get(number)
            if f is None:
                # A field number is at most 2**29 - 1: a larger one is named as such, not
                # echoed (19 digits of a caller's bytes could read as an ID number).
                shown = number if number <= MAX_FIELD_NUMBER else "out of range"
                name = f"{prefix}(field {shown})"
            elif f.is_repeated:
                i = counts[number] = counts.get(number, -1) + 1
                name = f"{prefix}{f.name}[{i}]"
            else:
                name = f"{prefix}{f.name}"
            if number == 0 or number > MAX_FIELD_NUMBER:
                return name
            if wire_type == 0:
                _, pos = _varint(buf, pos)
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            elif wire_type == 2:
                size, pos = _varint(buf, pos)
                chunk = buf[pos : pos + size]
                pos += size
                if len(chunk) < size:
                    return name
                if f is not None and f.type == FieldDescriptor.TYPE_STRING:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError:
                        return name
                elif f is not None and f.type == FieldDescriptor.TYPE_MESSAGE:
                    inner = _locate(f.message_type, chunk, f"{name}.")
                    if inner:
                        return inner
            else:  # groups (3, 4) and 6, 7 are not in proto3 messages
                return name
            if pos > len(buf):
                return name
    except _Truncated:
        return f"{prefix}(truncated)" if prefix else "request"
    return ""
