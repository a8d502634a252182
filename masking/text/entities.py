"""The entity types free-text detection knows, their titles and how each is masked when a
plan is silent: all derived from the recognizers' registry (masking.text.registry).

Kept free of presidio imports so that validating a plan (masking.text.operator)
does not load the analyzer.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# Names some modules spell in code (names.py: PERSON) live in entity_names, which
# imports nothing: a recognizer module takes them from there, the registry from it.
from masking.text.base import MASK
from masking.text.entity_names import (  # noqa: F401 (re-exported)
    ADDRESS,
    BANK_CARD,
    EMAIL_ADDRESS,
    ID_NUMBER,
    NAMED,
    PASSPORT,
    PERSON,
    PHONE_NUMBER,
    USCC,
    VEHICLE_PLATE,
)
from masking.text.registry import RECOGNIZERS

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
