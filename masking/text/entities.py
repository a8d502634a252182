"""The entity types free-text detection knows, their titles and how each is masked when a
plan is silent: all derived from the recognizers' registry (masking.text.registry).

Kept free of presidio imports so that validating a plan (masking.text.operator)
does not load the analyzer.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# Names some modules spell in code (names.py: PERSON). A new type needs none: its
# recognizer's `entity` is its name; the registry checks each of these is registered.
ID_NUMBER = "ID_NUMBER"
PHONE_NUMBER = "PHONE_NUMBER"
BANK_CARD = "BANK_CARD"
USCC = "USCC"
PASSPORT = "PASSPORT"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
VEHICLE_PLATE = "VEHICLE_PLATE"
PERSON = "PERSON"
ADDRESS = "ADDRESS"
NAMED = (ID_NUMBER, PHONE_NUMBER, BANK_CARD, USCC, PASSPORT, EMAIL_ADDRESS, VEHICLE_PLATE, PERSON, ADDRESS)  # fmt: skip

# Imported after the names above: recognizer modules import them from here, and the
# package (masking.text) imports this module before any recognizer module.
from masking.text.base import MASK  # noqa: E402
from masking.text.registry import RECOGNIZERS  # noqa: E402

ENTITY_TYPES: tuple[str, ...] = tuple(cls.entity for cls in RECOGNIZERS)

# A plan's `default` when it names none: mask every character.
DEFAULT_TREATMENT: Mapping[str, Any] = MASK

# Each type's own treatment when a plan names neither it nor a `default`.
DEFAULT_TREATMENTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {cls.entity: cls.treatment for cls in RECOGNIZERS}
)

# Chinese labels, for people reading `govgw mask text` output.
TITLES: Mapping[str, str] = MappingProxyType({cls.entity: cls.title for cls in RECOGNIZERS})

if missing := set(NAMED) - set(ENTITY_TYPES):
    raise ImportError(f"entity names without a registered recognizer: {sorted(missing)}")
