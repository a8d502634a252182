"""Protobuf answers to the SDK's typed results, and results to their JSON form.

One generic walk over the message descriptor (the generated dataclasses in
clients.sdk.types mirror the protos field for field): enums become Python
enums, timestamps datetimes (UTC), durations timedeltas, repeated fields
tuples, unset sub-messages None.
"""

from __future__ import annotations

import dataclasses
import enum
import keyword
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from clients.sdk import types

T = TypeVar("T")


@cache
def _registry() -> tuple[dict[str, type], dict[str, type[enum.Enum]]]:
    messages: dict[str, type] = {}
    enums: dict[str, type[enum.Enum]] = {}
    for name in types.__all__:
        cls = getattr(types, name)
        if isinstance(cls, type) and issubclass(cls, enum.Enum):
            enums[cls.__module__.rsplit(".", 1)[-1] + "." + name] = cls
        elif dataclasses.is_dataclass(cls) and cls.PROTO.rsplit(".", 1)[-1] == name:
            messages[cls.PROTO] = cls  # not the XResult subclasses: they share the PROTO
    return messages, enums


def _enum_class(f: FieldDescriptor) -> type[enum.Enum]:
    module = f.enum_type.file.name.rsplit("/", 1)[-1].removesuffix(".proto")
    return _registry()[1][f"{module}.{f.enum_type.name}"]


def _enum(f: FieldDescriptor, number: int) -> enum.Enum:
    cls = _enum_class(f)
    try:
        return cls(number)
    except ValueError:  # a value newer than this SDK: read as unspecified, not a crash
        return cls(0)


def _one(f: FieldDescriptor, value: Any) -> Any:
    if f.message_type is None:
        return _enum(f, value) if f.enum_type is not None else value
    name = f.message_type.full_name
    if name == "google.protobuf.Timestamp":
        return value.ToDatetime(tzinfo=UTC)
    if name == "google.protobuf.Duration":
        return value.ToTimedelta()
    if name == "google.protobuf.Struct":
        return MessageToDict(value)
    return from_proto(value)


def fields_of(msg: Message, known: set[str]) -> dict[str, Any]:
    """The message's fields the dataclass knows, as its keyword arguments. Fields of a
    newer proto than these types are left out, not a crash: an SDK keeps working
    against a gateway that has grown."""
    out: dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        key = f.name + "_" if keyword.iskeyword(f.name) else f.name
        if key not in known:
            continue
        value = getattr(msg, f.name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            vf = f.message_type.fields_by_name["value"]
            out[key] = {k: _one(vf, v) for k, v in value.items()}
        elif f.is_repeated:
            out[key] = tuple(_one(f, v) for v in value)
        elif f.message_type is not None and not msg.HasField(f.name):
            out[key] = {} if f.message_type.full_name == "google.protobuf.Struct" else None
        else:
            out[key] = _one(f, value)
    return out


def from_proto(msg: Message, as_type: type[T] | None = None, **extra: Any) -> T:
    """The typed form of `msg` (or of `as_type`, a Result subclass), plus `extra` fields."""
    cls = as_type or _registry()[0][msg.DESCRIPTOR.full_name]
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kw = fields_of(msg, names)
    kw.update({k: v for k, v in extra.items() if k in names and (v or not kw.get(k))})
    return cls(**kw)


def to_json(obj: Any) -> Any:
    """The JSON form of a result: dataclasses as objects, enums by name, times RFC 3339."""
    if hasattr(obj, "to_json") and not isinstance(obj, type):
        return obj.to_json()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, datetime):
        return obj.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, bytes):
        import base64

        return base64.b64encode(obj).decode()
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    return obj
