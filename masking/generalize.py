"""Generalizers: the kinds behind the `generalize` operator, one class per kind.

A generalizer replaces a value by a coarser one (a birth date by its year,
an address by its city). Each fails closed: a value it cannot parse becomes
"", never the raw input. Adding a kind = adding a class with @register_kind.
"""

from __future__ import annotations

import datetime
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from masking.base import MaskingContext, MaskingError, ParamReader
from masking.gazetteer import LEVELS as ADDRESS_LEVELS
from masking.gazetteer import gazetteer

OPERATOR = "generalize"
# Plain ASCII digits: \d would also accept full-width and other Unicode digits,
# which date() and the code arithmetic below do not expect.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_REGION_CODE = re.compile(r"[0-9]{6}")


class Generalizer(ABC):
    kind: ClassVar[str]
    levels: ClassVar[tuple[str, ...]]
    # Params besides kind and level, and the levels each is valid with.
    extra_params: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def reader(self, params: Mapping[str, Any]) -> tuple[ParamReader, str]:
        reader = ParamReader(OPERATOR, params, {"kind", "level", *self.extra_params})
        level = reader.choice("level", self.levels)
        for name, valid_levels in self.extra_params.items():
            if name in params and level not in valid_levels:
                raise reader.error(name, f"is only valid with level {' or '.join(valid_levels)}")
        return reader, level

    def check_params(self, params: Mapping[str, Any]) -> None:
        self.reader(params)

    @abstractmethod
    def generalize(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        """The coarser value, or "" when `value` cannot be parsed."""


_KINDS: dict[str, Generalizer] = {}


def register_kind(cls: type[Generalizer]) -> type[Generalizer]:
    if not isinstance(getattr(cls, "kind", None), str) or not cls.kind:
        raise MaskingError(f"generalizer {cls.__name__} has no kind")
    if cls.kind in _KINDS:
        raise MaskingError(f"generalize kind {cls.kind!r} is already registered")
    _KINDS[cls.kind] = cls()
    return cls


def get_kind(params: Mapping[str, Any]) -> Generalizer:
    """The generalizer named by params['kind']; MaskingError if missing or unknown."""
    if not isinstance(params, Mapping):
        raise MaskingError(f"{OPERATOR}: params must be a mapping", operator=OPERATOR)
    kind = ParamReader(OPERATOR, params, params.keys()).choice("kind", sorted(_KINDS))
    return _KINDS[kind]


def kind_names() -> list[str]:
    return sorted(_KINDS)


@register_kind
class BirthDate(Generalizer):
    """YYYY-MM-DD -> "1985" (level year) or "30-39" (level age_band, width `band`)."""

    kind = "birth_date"
    levels = ("year", "age_band")
    extra_params: ClassVar[Mapping[str, tuple[str, ...]]] = {"band": ("age_band",)}

    def spec(self, params: Mapping[str, Any]) -> tuple[str, int]:
        reader, level = self.reader(params)
        return level, reader.integer("band", 10, minimum=1)

    def check_params(self, params: Mapping[str, Any]) -> None:
        self.spec(params)

    def generalize(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        level, band = self.spec(params)
        text = value.strip()
        if not _DATE.fullmatch(text):
            return ""
        try:
            born = datetime.date.fromisoformat(text)
        except ValueError:
            return ""
        if level == "year":
            return f"{born.year:04d}"
        age = (
            ctx.today.year - born.year - ((ctx.today.month, ctx.today.day) < (born.month, born.day))
        )
        if age < 0:
            return ""  # born after today: bad data, and no band describes it
        low = age // band * band
        return f"{low}-{low + band - 1}"


@register_kind
class RegionCode(Generalizer):
    """A GB/T 2260 code to its province (510000) or city (513200); county keeps it."""

    kind = "region_code"
    levels = ("province", "city", "county")
    _kept_digits: ClassVar[Mapping[str, int]] = {"province": 2, "city": 4, "county": 6}

    def generalize(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        _, level = self.reader(params)
        code = value.strip()
        if not _REGION_CODE.fullmatch(code) or not gazetteer().is_province_code(code[:2]):
            return ""
        kept = self._kept_digits[level]
        return code[:kept] + "0" * (6 - kept)


@register_kind
class Address(Generalizer):
    """A Chinese address cut after its province, city or district (see masking.gazetteer)."""

    kind = "address"
    levels = ADDRESS_LEVELS

    def generalize(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        _, level = self.reader(params)
        address = value.strip()
        parsed = gazetteer().parse(address)
        return parsed.prefix(address, level) if parsed is not None else ""
