"""Desensitization (脱敏): the per-field operators a decision's plan names.

Usage: `apply_treatment(plan.fields[name], record.get(name), ctx)`.
"""

from masking.base import MaskingContext, MaskingError
from masking.operators import Operator, apply_treatment, get_operator, operator_names, register
from masking.text import operator as _pii_text  # noqa: F401  (registers pii_text)

__all__ = [
    "MaskingContext",
    "MaskingError",
    "Operator",
    "apply_treatment",
    "get_operator",
    "operator_names",
    "register",
]
