"""What every masking operator shares: the error, the context and a param reader.

Kept apart from the operators so that helper modules (generalizers, the
gazetteer) can use them without importing the operator registry.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.crypto import DEFAULT_SUITE, get_suite

# A shorter key would make pseudonyms cheap to brute-force over the small
# space of ID numbers; KeyRing generates 32 bytes.
MIN_PSEUDONYM_KEY_BYTES = 32


class MaskingError(ValueError):
    """A treatment cannot be applied: unknown operator, bad params, bad context.

    Messages name the operator and the param, never the value being masked,
    so the error can be logged and returned as-is.
    """

    def __init__(self, message: str, *, operator: str = "", param: str = "") -> None:
        super().__init__(message)
        self.operator = operator
        self.param = param


@dataclass(frozen=True)
class MaskingContext:
    caller_id: str  # pseudonyms are scoped per caller
    pseudonym_key: bytes  # 32-byte secret from KeyRing.pseudonym_key
    today: datetime.date  # for age bands
    # The deployment's cipher suite (gateway.crypto): its MAC keys pseudonyms,
    # HMAC-SM3 under national cryptography.
    suite: str = DEFAULT_SUITE

    def __post_init__(self) -> None:
        # Checked here rather than in the pseudonym operator so that a bad
        # context fails on the first field, whatever its operator.
        if not isinstance(self.caller_id, str) or not self.caller_id:
            raise MaskingError("masking context: caller_id must be a non-empty string")
        if (
            not isinstance(self.pseudonym_key, bytes)
            or len(self.pseudonym_key) < MIN_PSEUDONYM_KEY_BYTES
        ):
            raise MaskingError(
                f"masking context: pseudonym_key must be at least {MIN_PSEUDONYM_KEY_BYTES} bytes"
            )
        # datetime is a subclass of date; a datetime here would make age
        # arithmetic depend on the time of day, so insist on a plain date.
        if not isinstance(self.today, datetime.date) or isinstance(self.today, datetime.datetime):
            raise MaskingError("masking context: today must be a datetime.date")
        try:
            get_suite(self.suite)
        except ValueError:
            raise MaskingError("masking context: unknown cipher suite") from None


class ParamReader:
    """Reads and validates one operator's params.

    Every error names the operator and the param; values are policy
    configuration, but they are still left out so that a message never
    echoes anything it was handed.
    """

    def __init__(self, operator: str, params: Mapping[str, Any], allowed: Collection[str]) -> None:
        self.operator = operator
        if not isinstance(params, Mapping):
            raise MaskingError(f"{operator}: params must be a mapping", operator=operator)
        for key in params:
            if key not in allowed:
                raise MaskingError(
                    f"{operator}: unknown param {str(key)!r}"
                    + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else ""),
                    operator=operator,
                    param=str(key),
                )
        self.params = params

    def error(self, param: str, problem: str) -> MaskingError:
        return MaskingError(
            f"{self.operator}: param {param} {problem}", operator=self.operator, param=param
        )

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        value = self.params.get(name, default)
        # bool is an int subclass: `keep_first: true` is a policy typo, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, "must be an integer")
        if value < minimum:
            raise self.error(name, f"must be at least {minimum}")
        return value

    def string(self, name: str, default: str | None = None) -> str:
        if name not in self.params:
            if default is None:
                raise self.error(name, "is required")
            return default
        value = self.params[name]
        if not isinstance(value, str):
            raise self.error(name, "must be a string")
        return value

    def choice(self, name: str, choices: Collection[str], default: str | None = None) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise self.error(name, f"must be one of: {', '.join(choices)}")
        return value
