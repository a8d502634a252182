"""Predicates: yes/no questions answered over a subject's records (核验、比对).

A predicate is a small class registered by name. It declares the dataset
whose records answer it and the subject kind it applies to, parses and
checks its arguments, and evaluates to a bool. Values never leave: only
the bool does. Adding a predicate is adding a class here and naming it in
the dataset's `predicates` in the catalog.
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from gateway.subjects import LEGAL_ENTITY, PERSON

Row = Mapping[str, str]


class PredicateArgError(ValueError):
    """The predicate's arguments are wrong; the message says how, without values."""


@dataclass(frozen=True)
class PredicateContext:
    today: date


_SPACE = re.compile(r"\s+")
_DOTS = re.compile(r"[·•・‧∙]")


def normalize_name(name: str) -> str:
    """Compare names as a clerk would: width-folded, no spaces, one kind of middle dot.

    Ethnic-minority names are written with a middle dot in several code
    points (·, •, ・, ‧); a transcription difference must not fail a check.
    """
    return _DOTS.sub("·", _SPACE.sub("", unicodedata.normalize("NFKC", name)))


def _parse_date(s: str) -> date | None:
    try:
        return date.fromisoformat(s)
    except (TypeError, ValueError):
        return None


class Predicate(ABC):
    name: ClassVar[str]
    dataset: ClassVar[str]
    subject_kind: ClassVar[str]
    # The fields of `dataset` the answer rests on: a pending correction of one of
    # them is indicated with the answer (R8, `gateway.access.disputes`).
    fields: ClassVar[tuple[str, ...]] = ()
    # (min, max) number of arguments
    arity: ClassVar[tuple[int, int]] = (0, 0)

    def parse_args(self, args: Sequence[str]) -> tuple[Any, ...]:
        lo, hi = self.arity
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise PredicateArgError(f"{self.name} takes {want} argument(s), got {len(args)}")
        return self._parse(args)

    def _parse(self, args: Sequence[str]) -> tuple[Any, ...]:
        return tuple(args)

    @abstractmethod
    def evaluate(
        self, rows: Sequence[Row], args: tuple[Any, ...], ctx: PredicateContext
    ) -> bool: ...


_REGISTRY: dict[str, Predicate] = {}


def register(cls: type[Predicate]) -> type[Predicate]:
    _REGISTRY[cls.name] = cls()
    return cls


def get_predicate(name: str) -> Predicate | None:
    return _REGISTRY.get(name)


def predicate_names() -> list[str]:
    return sorted(_REGISTRY)


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


@register
class IdentityMatch(Predicate):
    """The name on record for this ID number is the given name."""

    name = "identity_match"
    fields = ("name",)
    dataset = "population.basic"
    subject_kind = PERSON
    arity = (1, 1)

    def _parse(self, args: Sequence[str]) -> tuple[Any, ...]:
        n = normalize_name(args[0])
        if not n:
            raise PredicateArgError("name is required")
        if len(n) > 64:
            raise PredicateArgError("name is longer than 64 characters")
        return (n,)

    def evaluate(self, rows: Sequence[Row], args: tuple[Any, ...], ctx: PredicateContext) -> bool:
        return any(normalize_name(r.get("name", "")) == args[0] for r in rows)


@register
class AgeAtLeast(Predicate):
    name = "age_at_least"
    fields = ("birth_date",)
    dataset = "population.basic"
    subject_kind = PERSON
    arity = (1, 1)

    def _parse(self, args: Sequence[str]) -> tuple[Any, ...]:
        if not re.fullmatch(r"\d{1,3}", args[0].strip()) or int(args[0]) > 150:
            raise PredicateArgError("age must be a whole number of years from 0 to 150")
        return (int(args[0]),)

    def evaluate(self, rows: Sequence[Row], args: tuple[Any, ...], ctx: PredicateContext) -> bool:
        for r in rows:
            born = _parse_date(r.get("birth_date", ""))
            if born is not None and age_on(born, ctx.today) >= args[0]:
                return True
        return False


@register
class ResidentIn(Predicate):
    """Household registration lies within a region-code prefix (province 2, city 4, county 6)."""

    name = "resident_in"
    fields = ("region_code",)
    dataset = "population.basic"
    subject_kind = PERSON
    arity = (1, 1)

    def _parse(self, args: Sequence[str]) -> tuple[Any, ...]:
        code = args[0].strip()
        # "513200" names the prefecture as a whole: drop trailing zero pairs.
        while len(code) > 2 and code.endswith("00"):
            code = code[:-2]
        if not re.fullmatch(r"\d{2}|\d{4}|\d{6}", code):
            raise PredicateArgError(
                "region must be a 2-, 4- or 6-digit administrative division code"
            )
        return (code,)

    def evaluate(self, rows: Sequence[Row], args: tuple[Any, ...], ctx: PredicateContext) -> bool:
        return any(r.get("region_code", "").startswith(args[0]) for r in rows)


@register
class HoldsValidLicence(Predicate):
    name = "holds_valid_licence"
    fields = ("licence_type", "status", "valid_until")
    dataset = "licence.business"
    subject_kind = LEGAL_ENTITY
    arity = (1, 1)

    def _parse(self, args: Sequence[str]) -> tuple[Any, ...]:
        t = normalize_name(args[0])
        if not t or len(t) > 64:
            raise PredicateArgError("licence type must be 1 to 64 characters")
        return (t,)

    def evaluate(self, rows: Sequence[Row], args: tuple[Any, ...], ctx: PredicateContext) -> bool:
        for r in rows:
            until = _parse_date(r.get("valid_until", ""))
            if (
                normalize_name(r.get("licence_type", "")) == args[0]
                and r.get("status") == "有效"
                and until is not None
                and until >= ctx.today
            ):
                return True
        return False


@register
class EntityActive(Predicate):
    name = "entity_active"
    fields = ("status",)
    dataset = "legal_entity.basic"
    subject_kind = LEGAL_ENTITY
    ACTIVE = frozenset({"存续", "在业"})

    def evaluate(self, rows: Sequence[Row], args: tuple[Any, ...], ctx: PredicateContext) -> bool:
        return any(r.get("status") in self.ACTIVE for r in rows)


@register
class ReceivesSocialAssistance(Predicate):
    """Currently receives assistance, optionally of one type (e.g. 最低生活保障)."""

    name = "receives_social_assistance"
    fields = ("assistance_type", "start_date", "end_date")
    dataset = "social_assistance.recipient"
    subject_kind = PERSON
    arity = (0, 1)

    def evaluate(self, rows: Sequence[Row], args: tuple[Any, ...], ctx: PredicateContext) -> bool:
        for r in rows:
            start = _parse_date(r.get("start_date", ""))
            end = _parse_date(r.get("end_date", "")) if r.get("end_date") else None
            if start is None or start > ctx.today or (end is not None and end < ctx.today):
                continue
            if not args or r.get("assistance_type") == args[0]:
                return True
        return False
