"""Chinese addresses in free text: GB/T 2260 division names, then the street-level part.

An ADDRESS here is one that locates a person or premises: division names
followed by street-level detail (镇、村、路、号、栋、单元、室…), or anything
address-like right after an address word (住址、家住、户籍地…). A bare place
name (前往成都市出差) is not masked: it identifies nobody, and masking every
place would make remarks unreadable. Division names come from the gazetteer
that already parses structured address fields (masking.gazetteer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from masking.gazetteer import gazetteer
from masking.text.base import ChineseRecognizer, Scores

_NOT_IN_NAME = "的了在是于因等与及或并而但从到对把被将为也就还已未曾让给"
_SEGMENT = rf"(?:(?![{_NOT_IN_NAME}])[\u4e00-\u9fffA-Za-z]){{1,8}}"
_NUMBER = r"(?:[0-9]{1,5}(?:-[0-9]{1,5}){0,3}|[一二三四五六七八九十百零]{1,4})"
_UNIT = (
    r"(?:街道|镇|乡|村委会|居委会|村|社区|小区|花园|大厦|广场|公寓|新村|大道|大街|路|街|巷|弄|胡同"
    r"|组|队|号院|号楼|号|栋|幢|座|单元|楼|层|室|苑|家园|园|院|屯|期|段|里|城|中心)"
)
_DETAIL = re.compile(rf"(?:(?:{_NUMBER}|{_SEGMENT}){_UNIT})+(?:附?{_NUMBER}(?:号|室)?)?")
# A road and number on their own: 人民南路4段12号, 建设路88号.
_STREET = re.compile(
    rf"(?:(?![{_NOT_IN_NAME}])[\u4e00-\u9fff]){{2,8}}?(?:大道|大街|路|街|巷|弄|胡同){_NUMBER}(?:段{_NUMBER})?号"
    rf"(?:(?:{_NUMBER}|{_SEGMENT})(?:号院|号楼|栋|幢|座|单元|楼|层|室))*"
)
_CONTEXT_WORDS = (
    r"(?:住址|地址|家住|住在|居住在|居住于|现住|现居|户籍地|户籍所在地|住所|所在地|位于|坐落于|迁入|迁往|送达至|寄往|详细地址)"
    r"[ \t]*(?:为|是|在)?[ \t]*[:：]?[ \t]*"
)
_CONTEXT = re.compile(_CONTEXT_WORDS)
_CONTEXT_BEFORE = re.compile(_CONTEXT_WORDS + "$")
# Units that make a detail "street-level" (a bare 区 or 园 after a city is not).
_STREET_LEVEL = re.compile(
    r"(?:镇|乡|村|社区|小区|路|街|巷|弄|胡同|组|号|栋|幢|单元|室|大厦|公寓|花园)"
)


@cache
def _admin_names() -> tuple[frozenset[str], frozenset[str], int]:
    """Every province (full and short), prefecture and county name; their first characters."""
    gz = gazetteer()
    names = set(gz.province_names) | set(gz.all_prefectures)
    for counties in gz.counties_in.values():
        names |= counties
    # Short names (四川, 北京) only lead: a chain must continue after them.
    names |= set(gz.province_short)
    names = {n for n in names if len(n) >= 2}
    return frozenset(names), frozenset(n[0] for n in names), max(len(n) for n in names)


def _admin_at(text: str, pos: int) -> int:
    """End of the longest division name starting at pos, or pos if none."""
    names, _, max_len = _admin_names()
    for end in range(min(len(text), pos + max_len), pos + 1, -1):
        if text[pos:end] in names:
            return end
    return pos


class CnAddressRecognizer(ChineseRecognizer):
    entity = "ADDRESS"
    title = "地址"
    scores = Scores(
        divisions_and_detail=0.9,  # 汶川县威州镇羌锋村2组8号
        after_address_word=0.85,  # 住址：汶川县 / 家住威州镇羌锋村2组8号
        street_and_number=0.75,  # 人民南路4段12号
    )

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        _, first_chars, _ = _admin_names()
        short = frozenset(gazetteer().province_short)
        covered = 0
        pos = 0
        n = len(text)
        while pos < n:
            if pos < covered or text[pos] not in first_chars:
                pos += 1
                continue
            end = pos
            levels = 0
            while True:
                nxt = _admin_at(text, end)
                if nxt == end or (levels and text[end:nxt] in short):
                    break  # a short name (重庆, 成都) later in a chain is a street's
                levels += 1
                end = nxt
            if levels == 0 or (levels == 1 and text[pos:end] in short):
                pos += 1
                continue
            detail = _DETAIL.match(text, end)
            context = bool(_CONTEXT_BEFORE.search(text[max(0, pos - 10) : pos]))
            if detail and _STREET_LEVEL.search(detail.group()):
                yield pos, detail.end(), self.scores.divisions_and_detail
                covered = detail.end()
            elif context:
                stop = detail.end() if detail else end
                yield pos, stop, self.scores.after_address_word
                covered = stop
            pos = max(pos + 1, covered)
        yield from self._without_divisions(text)

    def _without_divisions(self, text: str) -> Iterable[tuple[int, int, float]]:
        # After an address word, the detail alone: 家住威州镇羌锋村2组8号.
        for m in _CONTEXT.finditer(text):
            at = m.end()
            _, first_chars, _ = _admin_names()
            if at < len(text) and text[at] in first_chars and _admin_at(text, at) > at:
                continue  # the division-led pass above has it
            detail = _DETAIL.match(text, at)
            if detail and _STREET_LEVEL.search(detail.group()):
                yield at, detail.end(), self.scores.after_address_word
        for m in _STREET.finditer(text):
            yield m.start(), m.end(), self.scores.street_and_number
