"""Subject keys (R13): persons by ID number, legal entities by USCC.

Validation uses python-stdnum (GB 11643 MOD 11-2 check digit, GB 32100
check character). Errors name the field and what is wrong, never the value.
"""

from __future__ import annotations

from stdnum import exceptions as stdnum_exc
from stdnum.cn import ric, uscc

from gateway.errors import invalid

PERSON = "person"
LEGAL_ENTITY = "legal_entity"


def normalize_id_number(value: str, field_name: str = "id_number") -> str:
    """Return the compact upper-case ID number or raise INVALID_ARGUMENT."""
    raw = (value or "").strip()
    if not raw:
        raise invalid(field_name, "is required", "ID_NUMBER_MISSING")
    try:
        compact = ric.compact(raw).upper()
        if len(compact) != 18:
            raise invalid(field_name, "must be 18 characters", "ID_NUMBER_LENGTH")
        return ric.validate(compact)
    except stdnum_exc.InvalidChecksum as e:
        raise invalid(field_name, "check digit does not match", "ID_NUMBER_CHECK_DIGIT") from e
    except stdnum_exc.InvalidComponent as e:
        raise invalid(
            field_name, "birth date or region part is not valid", "ID_NUMBER_COMPONENT"
        ) from e
    except stdnum_exc.ValidationError as e:
        raise invalid(field_name, "is not a valid ID number", "ID_NUMBER_FORMAT") from e


def normalize_uscc(value: str, field_name: str = "uscc") -> str:
    raw = (value or "").strip()
    if not raw:
        raise invalid(field_name, "is required", "USCC_MISSING")
    try:
        return uscc.validate(raw.upper())
    except stdnum_exc.InvalidChecksum as e:
        raise invalid(field_name, "check character does not match", "USCC_CHECK_CHARACTER") from e
    except stdnum_exc.ValidationError as e:
        raise invalid(field_name, "is not a valid unified social credit code", "USCC_FORMAT") from e


def normalize_subject_key(kind: str, value: str, field_name: str) -> str:
    if kind == PERSON:
        return normalize_id_number(value, field_name)
    if kind == LEGAL_ENTITY:
        return normalize_uscc(value, field_name)
    raise ValueError(f"unknown subject kind {kind!r}")


def birth_date_of(id_number: str) -> str:
    """YYYY-MM-DD from a valid 18-digit ID number."""
    return f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
