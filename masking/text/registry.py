"""The one place a recognizer is registered: the analyzer, the entity list, the titles and
the default treatments are all derived from `RECOGNIZERS`.

Adding an entity type is one class (masking.text.base.ChineseRecognizer: its
entity, title, patterns, context words, validator and named scores) and one
line here. The order is the tie-break when two types score the same on one
span: identifiers before names. Nothing here imports presidio.
"""

from __future__ import annotations

from masking.text.address import CnAddressRecognizer
from masking.text.base import ChineseRecognizer
from masking.text.identifiers import (
    CnEmailRecognizer,
    CnPassportRecognizer,
    CnQqRecognizer,
    CnVehiclePlateRecognizer,
    CnWechatRecognizer,
)
from masking.text.names import CnPersonNameRecognizer
from masking.text.numbers import (
    CnBankCardRecognizer,
    CnIdNumberRecognizer,
    CnPhoneRecognizer,
    CnUsccRecognizer,
)

RECOGNIZERS: tuple[type[ChineseRecognizer], ...] = (
    CnIdNumberRecognizer,
    CnPhoneRecognizer,
    CnBankCardRecognizer,
    CnUsccRecognizer,
    CnPassportRecognizer,
    CnEmailRecognizer,
    CnVehiclePlateRecognizer,
    CnQqRecognizer,
    CnWechatRecognizer,
    CnPersonNameRecognizer,
    CnAddressRecognizer,
)


def _check() -> None:
    """A type declared twice, or without a title, is a mistake made once, here, at import."""
    seen: set[str] = set()
    for cls in RECOGNIZERS:
        if cls.entity in seen:
            raise ValueError(f"{cls.__name__}: entity type {cls.entity} is registered twice")
        if not getattr(cls, "title", ""):
            raise ValueError(f"{cls.__name__}: no title for {cls.entity}")
        seen.add(cls.entity)


_check()
