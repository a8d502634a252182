"""The entity types free-text detection knows, and how each is masked when a plan is silent.

Kept free of presidio imports so that validating a plan (masking.text.operator)
does not load the analyzer.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

ID_NUMBER = "ID_NUMBER"  # 居民身份证号码, 18-digit (GB 11643) and old 15-digit
PHONE_NUMBER = "PHONE_NUMBER"  # mobile and landline
BANK_CARD = "BANK_CARD"  # 银行卡号, Luhn
USCC = "USCC"  # 统一社会信用代码 (GB 32100)
PASSPORT = "PASSPORT"  # 护照号码
EMAIL_ADDRESS = "EMAIL_ADDRESS"
VEHICLE_PLATE = "VEHICLE_PLATE"  # 机动车号牌
PERSON = "PERSON"  # 姓名
ADDRESS = "ADDRESS"  # 住址: a located address, not a bare place name

ENTITY_TYPES: tuple[str, ...] = (
    ID_NUMBER,
    PHONE_NUMBER,
    BANK_CARD,
    USCC,
    PASSPORT,
    EMAIL_ADDRESS,
    VEHICLE_PLATE,
    PERSON,
    ADDRESS,
)

# When a plan names no operator for a detected type: mask every character.
# Length survives (it tells little), the value does not; a plan may loosen it.
DEFAULT_TREATMENT: MappingProxyType[str, Any] = MappingProxyType({"operator": "mask"})

# Chinese labels, for people reading `govgw mask text` output.
TITLES: MappingProxyType[str, str] = MappingProxyType(
    {
        ID_NUMBER: "身份证号",
        PHONE_NUMBER: "电话号码",
        BANK_CARD: "银行卡号",
        USCC: "统一社会信用代码",
        PASSPORT: "护照号码",
        EMAIL_ADDRESS: "电子邮箱",
        VEHICLE_PLATE: "车牌号",
        PERSON: "姓名",
        ADDRESS: "地址",
    }
)
