"""Desensitization (脱敏) operators, looked up by the name a plan gives them.

The plan maps each field that may leave to a `Treatment(operator, params)`;
`apply_treatment` runs it. Adding an operator = adding a class with
@register. Every operator except `keep` must never hand back the raw value:
`keep` is the only way a raw value leaves, and only where the plan says so.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.catalog import Treatment
from gateway.crypto import get_suite
from masking.base import MaskingContext, MaskingError, ParamReader
from masking.generalize import get_kind

__all__ = [
    "MaskingContext",
    "MaskingError",
    "Operator",
    "apply_treatment",
    "get_operator",
    "operator_names",
    "register",
]


class Operator(ABC):
    name: ClassVar[str]

    @abstractmethod
    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise MaskingError naming the bad param; called before any value is touched."""

    @abstractmethod
    def apply(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        """The desensitized value; params are validated again, so a direct call is safe."""


_REGISTRY: dict[str, Operator] = {}


def register(cls: type[Operator]) -> type[Operator]:
    """Class decorator: make the operator available under `cls.name`."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise MaskingError(f"operator class {cls.__name__} has no name")
    if name in _REGISTRY:
        raise MaskingError(f"operator {name!r} is already registered")
    _REGISTRY[name] = cls()
    return cls


def get_operator(name: str) -> Operator:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise MaskingError(f"unknown masking operator {str(name)!r}", operator=str(name)) from None


def operator_names() -> list[str]:
    return sorted(_REGISTRY)


def apply_treatment(treatment: Treatment, value: str | None, ctx: MaskingContext) -> str:
    """Desensitize one field value as the plan's treatment says.

    The treatment is validated even for a missing value, so a misconfigured
    plan fails on every record rather than only on the ones that have data.
    """
    op = get_operator(treatment.operator)
    op.check_params(treatment.params)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MaskingError(
            f"{op.name}: value must be a string, not {type(value).__name__}", operator=op.name
        )
    return op.apply(value, treatment.params, ctx)


class _NoParams(Operator):
    def check_params(self, params: Mapping[str, Any]) -> None:
        ParamReader(self.name, params, ())


@register
class Keep(_NoParams):
    """The raw value. Only reachable where the plan allows the field raw."""

    name = "keep"

    def apply(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        self.check_params(params)
        return value


@register
class Redact(_NoParams):
    """The value withheld entirely."""

    name = "redact"

    def apply(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        self.check_params(params)
        return ""


@dataclass(frozen=True)
class _MaskSpec:
    keep_first: int
    keep_last: int
    mask_char: str


@register
class Mask(Operator):
    """Keep the first `keep_first` and last `keep_last` characters, mask the rest.

    Works per code point, so 张三 is two characters. Length is preserved. If
    the value is too short for the keeps (nothing would be masked), at most
    half of it is kept, first characters before last: a one-character name
    becomes "*", 张三 with keep_first 1 stays 张*, but 欧阳 with keep_first 2
    becomes 欧*.

    The output depends only on the length and the kept characters. It can
    equal the input only if every masked position already held mask_char
    (an already-masked 张*): that reveals nothing, and swapping in another
    character to make it differ would tell the caller exactly that.
    """

    name = "mask"

    def spec(self, params: Mapping[str, Any]) -> _MaskSpec:
        reader = ParamReader(self.name, params, ("keep_first", "keep_last", "mask_char"))
        mask_char = reader.string("mask_char", "*")
        if len(mask_char) != 1 or mask_char.isspace() or not mask_char.isprintable():
            raise reader.error("mask_char", "must be one printable, non-space character")
        return _MaskSpec(reader.integer("keep_first", 0), reader.integer("keep_last", 0), mask_char)

    def check_params(self, params: Mapping[str, Any]) -> None:
        self.spec(params)

    def apply(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        spec = self.spec(params)
        first, last = spec.keep_first, spec.keep_last
        length = len(value)
        if first + last >= length:
            budget = length // 2
            first = min(first, budget)
            last = min(last, budget - first)
        return value[:first] + spec.mask_char * (length - first - last) + value[length - last :]


@register
class Pseudonym(Operator):
    """A keyed, per-caller pseudonym: "ps_" + 20 base32 characters (100 bits).

    HMAC under the gateway's pseudonym key (HMAC-SHA256, or HMAC-SM3 in the
    national suite), never a plain hash: an
    unkeyed hash of an ID number is reversed by enumerating the few billion
    valid numbers. The caller id is mixed in so that two callers' results
    cannot be joined on the pseudonym; the optional `scope` separates, e.g.,
    datasets or purposes of the same caller. Equal values give equal
    pseudonyms for one (key, caller, scope), which is what makes a pseudonym
    useful: values are not normalized here, the pipeline normalizes keys.
    """

    name = "pseudonym"
    prefix: ClassVar[str] = "ps_"
    length: ClassVar[int] = 20
    # Domain separation: the same key must never produce the same MAC for a
    # different construction (or a future version of this one).
    _label: ClassVar[bytes] = b"govgw/masking/pseudonym/v1"

    def scope(self, params: Mapping[str, Any]) -> str:
        return ParamReader(self.name, params, ("scope",)).string("scope", "")

    def check_params(self, params: Mapping[str, Any]) -> None:
        self.scope(params)

    def apply(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        scope = self.scope(params)
        if not value:
            return ""  # an empty field stays empty; there is no subject to pseudonymize
        message = b"".join(_framed(part) for part in (self._label, ctx.caller_id, scope, value))
        digest = get_suite(ctx.suite).mac(ctx.pseudonym_key, message)
        return self.prefix + base64.b32encode(digest).decode().lower()[: self.length]


def _framed(part: str | bytes) -> bytes:
    """Length-prefixed, so (caller "ab", value "c") never collides with ("a", "bc")."""
    # surrogatepass: a lone surrogate (possible in a Python str, never in
    # valid UTF-8 input) must still hash deterministically, not crash.
    data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
    return len(data).to_bytes(4, "big") + data


@register
class Generalize(Operator):
    """A coarser value by `kind` (birth_date, region_code, address); see masking.generalize."""

    name = "generalize"

    def check_params(self, params: Mapping[str, Any]) -> None:
        get_kind(params).check_params(params)

    def apply(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        kind = get_kind(params)
        kind.check_params(params)
        return kind.generalize(value, params, ctx)
