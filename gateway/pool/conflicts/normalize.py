"""The forms values are compared in, as named steps (so a report can say which step made two equal).

Strict steps decide whether two values conflict at all: formatting alone is
never a conflict. NFKC (full-width digits and letters, compatibility forms),
blanks, name dots, case, date notations (1958年9月30日, 1958/9/30, 19580930),
and for addresses the punctuation, Chinese numerals before units (三组 = 3组),
a trailing 号 and the province and prefecture in front of a recognised
county. A variant character (瑪 for 玛) or a county's old name is not
normalized away by them: it is a different entry in a register, and the
coordinator is told about it.

Lenient steps come on top, only to grade a reported conflict: traditional
characters read as simplified (OpenCC's t2s table), and a county's old name
read as its current one (divisions.py). Values equal after them are the same
person or place written differently: verdict `format only`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date
from functools import cache

import opencc

from gateway.pool.conflicts.divisions import rename_leading_county
from masking.gazetteer import CITY, DISTRICT, PROVINCE, gazetteer

_BLANKS = re.compile(r"\s+")
# Middle dots of transliterated names (阿卜杜·热合曼) come in many code points.
_NAME_DOTS = re.compile(r"[·•・‧∙⋅.．]")
_DATE_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_ADDRESS_PUNCT = re.compile(r"[,，、。.·\-－—–_()（）\[\]【】#＃:：;；'\"“”‘’]")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}  # fmt: skip
_CN_NUMBER_BEFORE_UNIT = re.compile(
    r"([零〇一二两三四五六七八九十百]+)(?=[组號号栋幢单元楼层室巷弄社队排])"
)


def _cn_number(text: str) -> str:
    """一 -> 1, 十二 -> 12, 三十 -> 30, 一百零五 -> 105, 一二 -> 12 (digit by digit)."""
    if "十" not in text and "百" not in text:
        return "".join(str(_CN_DIGITS[ch]) for ch in text)
    total, digit = 0, None
    for ch in text:
        if ch == "百":
            total += (digit if digit is not None else 1) * 100
            digit = None
        elif ch == "十":
            total += (digit if digit is not None else 1) * 10
            digit = None
        else:
            digit = _CN_DIGITS[ch]
    return str(total + (digit or 0))


def _width(value: str) -> str:
    return unicodedata.normalize("NFKC", value)


def _blanks(value: str) -> str:
    return _BLANKS.sub("", value)


def _name_dots(value: str) -> str:
    return _NAME_DOTS.sub("", value)


def _case(value: str) -> str:
    return value.casefold()


def _date_notation(value: str) -> str:
    text = value.strip()
    m = _DATE_YMD.fullmatch(text) or _DATE_COMPACT.fullmatch(text)
    if m is None:
        return _BLANKS.sub("", text)
    try:
        return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        return _BLANKS.sub("", text)  # not a calendar date: compare as written


def _address_punct(value: str) -> str:
    return _ADDRESS_PUNCT.sub("", value)


def _numerals(value: str) -> str:
    return _CN_NUMBER_BEFORE_UNIT.sub(lambda m: _cn_number(m[1]), value)


def _house_number(value: str) -> str:
    return value.replace("號", "号").removesuffix("号")


def _county_first(value: str) -> str:
    parsed = gazetteer().parse(value)
    if parsed is not None and DISTRICT in parsed.ends:
        # From the county on: "四川省阿坝藏族羌族自治州汶川县…" and "汶川县…" are one place.
        cut = max((parsed.ends[lvl] for lvl in (PROVINCE, CITY) if lvl in parsed.ends), default=0)
        return value[cut:]
    return value


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _variants(value: str) -> str:
    return str(_t2s().convert(value))


Step = tuple[str, bool, Callable[[str], str]]  # (name shown to the coordinator, strict?, step)
STEPS: dict[str, tuple[Step, ...]] = {
    "name": (
        ("width", True, _width),
        ("blanks", True, _blanks),
        ("punctuation", True, _name_dots),
        ("case", True, _case),
        ("variant characters", False, _variants),
    ),
    "date": (
        ("width", True, _width),
        ("date notation", True, _date_notation),
    ),
    "address": (
        ("width", True, _width),
        ("blanks", True, _blanks),
        ("punctuation", True, _address_punct),
        ("numerals", True, _numerals),
        # Before the county is looked up: 四川省阿壩藏族羌族自治州 is then recognised.
        ("variant characters", False, _variants),
        ("house number", True, _house_number),
        ("province and prefecture", True, _county_first),
        ("renamed division", False, rename_leading_county),
    ),
}
_STRICT = {kind: tuple(f for _, strict, f in steps if strict) for kind, steps in STEPS.items()}


def _run(steps: tuple[Callable[[str], str], ...], value: str) -> str:
    for step in steps:
        value = step(value)
    return value


def normalize(kind: str, value: str) -> str:
    """The strict form of a value of attribute kind `kind`: values differing in it conflict."""
    return _run(_STRICT[kind], value)


def lenient(kind: str, value: str) -> str:
    """The form after every step, strict and lenient: equal here means `format only`."""
    return _run(tuple(f for _, _, f in STEPS[kind]), value)


def equal_after(kind: str, a: str, b: str) -> tuple[str, ...]:
    """The steps two leniently equal values need, in pipeline order; () for identical values.

    A step is needed when the values differ without it. Where no single step is
    (two steps covering the same difference), every step that changed a value is named.
    """
    if a == b:
        return ()
    steps = STEPS[kind]
    without = [tuple(f for j, (_, _, f) in enumerate(steps) if j != i) for i in range(len(steps))]
    needed = tuple(steps[i][0] for i, rest in enumerate(without) if _run(rest, a) != _run(rest, b))
    if needed:
        return needed
    changed, x, y = [], a, b
    for name, _, f in steps:
        nx, ny = f(x), f(y)
        if (nx, ny) != (x, y):
            changed.append(name)
        x, y = nx, ny
    return tuple(changed)


def normalize_name(value: str) -> str:
    return normalize("name", value)


def normalize_date(value: str) -> str:
    return normalize("date", value)


def normalize_address(value: str) -> str:
    return normalize("address", value)
