"""Recognizers for identifiers: ID numbers, USCC, bank cards, passports, phones, e-mail, plates.

Each validates what it can (python-stdnum for check digits and the GB/T 2260
region table) so that order numbers, amounts and dates that merely look like
identifiers are left alone.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from functools import cache

from stdnum import luhn, numdb
from stdnum.cn import ric, uscc

from masking.text.base import NUM_END, NUM_START, ChineseRecognizer, Context
from masking.text.entities import (
    BANK_CARD,
    EMAIL_ADDRESS,
    ID_NUMBER,
    PASSPORT,
    PHONE_NUMBER,
    USCC,
    VEHICLE_PLATE,
)

# Words that say "this number is an order / invoice / case number", not personal data.
NOT_PERSONAL = (
    "订单",
    "单号",
    "流水号",
    "编号",
    "发票",
    "运单",
    "快递",
    "批次",
    "文号",
    "案号",
    "合同号",
    "工号",
    "学号",
    "证书号",
    "许可证号",
    "备案号",
    "代码证",
    "序列号",
    "条码",
    "金额",
    "元",
)


@cache
def _region_known(code: str) -> bool:
    """Is this 6-digit code a county-level unit of the GB/T 2260 table (any era)?"""
    parts = numdb.get("cn/loc").info(code)
    return len(parts) == 2 and all(props for _, props in parts)


def _valid_18(number: str) -> bool:
    """GB 11643: check digit (stdnum.cn.ric), a real birth date, a GB/T 2260 county code.

    stdnum's ric.is_valid also asks whether the county existed in the birth
    year; that table walk was most of the detection time, and a number with
    a valid check digit, date and county is personal data whichever year the
    county was renamed.
    """
    if ric.calc_check_digit(number) != number[-1].upper():
        return False
    try:
        datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return _region_known(number[:6])


class CnIdNumberRecognizer(ChineseRecognizer):
    """18-digit ID numbers (check digit, birth date, region: stdnum.cn.ric) and 15-digit ones.

    The 15-digit form (issued before 1999) has no check digit: it is accepted
    when its region code is known and its YYMMDD is a real date, and scores
    higher next to a word like 身份证.
    """

    entity = ID_NUMBER
    _18 = re.compile(
        NUM_START + r"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}[0-9Xx]" + NUM_END
    )
    _15 = re.compile(NUM_START + r"[1-9][0-9]{5}[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}" + NUM_END)
    # Written in groups: 6-8-4 (513221 19860412 0890), 4-4-4-4-2 (5132 2119 8604 1208 90)
    # or any other grouping, one space, dash or dot between groups, the same throughout.
    _grouped = re.compile(
        NUM_START
        + r"[1-9][0-9]{1,7}(?P<sep>[ .\-])[0-9]{1,8}(?:(?P=sep)[0-9]{1,8}){0,5}[0-9Xx]?"
        + NUM_END
    )
    words = Context(("身份证", "身份号", "证件号", "公民身份", "身份证号码", "证号"), NOT_PERSONAL)

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for m in self._18.finditer(text):
            if _valid_18(m.group()):
                yield m.start(), m.end(), 1.0
        for m in self._grouped.finditer(text):
            number = m.group().replace(m.group("sep"), "")
            if len(number) == 18 and _valid_18(number):
                yield m.start(), m.end(), 1.0
        for m in self._15.finditer(text):
            number = m.group()
            try:
                datetime.date(1900 + int(number[6:8]), int(number[8:10]), int(number[10:12]))
            except ValueError:
                continue
            if not _region_known(number[:6]):
                continue
            if self.words.has_negative(text, m.start()):
                continue
            yield m.start(), m.end(), 0.95 if self.words.has_positive(text, m.start()) else 0.6


def _looks_like_id(digits: str) -> bool:
    """18 digits with an ID number's shape: a known region and a real birth date."""
    if len(digits) != 18 or not digits[:17].isdigit():
        return False
    try:
        datetime.date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14]))
    except ValueError:
        return False
    return _region_known(digits[:6])


class CnUsccRecognizer(ChineseRecognizer):
    """统一社会信用代码: 18 characters, GB 32100 check character (stdnum.cn.uscc)."""

    entity = USCC
    words = Context(("信用代码", "社会信用", "USCC", "注册号", "纳税人识别号", "税号"), window=16)
    _pattern = re.compile(
        NUM_START + r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}" + NUM_END
    )

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for m in self._pattern.finditer(text):
            code = m.group()
            if not uscc.is_valid(code):
                continue
            # One in 31 all-digit strings passes the check character; an
            # all-digit code shaped like an ID number needs a USCC word nearby.
            if _looks_like_id(code) and not self.words.has_positive(text, m.start()):
                continue
            yield m.start(), m.end(), 0.98


class CnBankCardRecognizer(ChineseRecognizer):
    """Bank card numbers: 16-19 digits (groups of 4 may be spaced), Luhn, a card-issuer prefix.

    Without context a Luhn-valid number must also start like a real card
    (UnionPay 62, 60; Visa 4; Mastercard 51-55 and 2221-2720; JCB 35; Amex
    34/37); an order or serial number word nearby rules it out.
    """

    entity = BANK_CARD
    _pattern = re.compile(
        NUM_START
        + r"(?:[0-9]{4}[ -]){3}[0-9]{4}(?:[ -]?[0-9]{1,3})?"
        + NUM_END
        + r"|"
        + NUM_START
        + r"[0-9]{15,19}"
        + NUM_END
    )
    words = Context(
        (
            "卡号",
            "银行卡",
            "借记卡",
            "信用卡",
            "储蓄卡",
            "账号",
            "帐号",
            "账户",
            "帐户",
            "开户",
            "银行",
            "社保卡",
            "工资卡",
        ),
        NOT_PERSONAL,
        window=16,
    )

    @staticmethod
    def _issuer_like(digits: str) -> bool:
        if digits[0] == "4" or digits[:2] in ("62", "60", "35", "34", "37", "81"):
            return True
        if "51" <= digits[:2] <= "55":
            return True
        return 2221 <= int(digits[:4]) <= 2720

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for m in self._pattern.finditer(text):
            digits = m.group().replace(" ", "").replace("-", "")
            if not 15 <= len(digits) <= 19 or not luhn.is_valid(digits):
                continue
            if self.words.has_positive(text, m.start()):
                yield m.start(), m.end(), 0.95
            elif self.words.has_negative(text, m.start()) or _looks_like_id(digits):
                continue  # an order number, or an ID number with a typo: not a card
            elif len(digits) >= 16 and self._issuer_like(digits):
                yield m.start(), m.end(), 0.7


class CnPassportRecognizer(ChineseRecognizer):
    """Chinese passports (E + 8 digits, E + letter + 7 digits, G/D/S/P + 7-8 digits), and
    travel permits to Hong Kong, Macao and Taiwan (C/L/T/H/M + 8 digits) next to their names.
    """

    entity = PASSPORT
    _passport = re.compile(
        NUM_START + r"(?:E[0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|[GDSP][0-9]{7,8})" + NUM_END
    )
    _permit = re.compile(NUM_START + r"[CLTHM][0-9]{8}" + NUM_END)
    words = Context(
        ("护照", "通行证", "旅行证", "Passport", "passport", "证件号"), NOT_PERSONAL, window=14
    )

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for m in self._passport.finditer(text):
            if self.words.has_negative(text, m.start()) and not self.words.has_positive(
                text, m.start()
            ):
                continue
            yield m.start(), m.end(), 0.95 if self.words.has_positive(text, m.start()) else 0.6
        for m in self._permit.finditer(text):
            if self.words.has_positive(text, m.start()):
                yield m.start(), m.end(), 0.9


# Mobile prefixes allocated in mainland China (MIIT numbering plan).
_MOBILE = r"1(?:3[0-9]|4[5-9]|5[0-35-9]|6[2567]|7[0-8]|8[0-9]|9[0-35-9])"


class CnPhoneRecognizer(ChineseRecognizer):
    """Mobile numbers (11 digits, allocated prefixes, optional +86 and separators) and
    landlines with an area code (010, 02x, 0xxx) or, next to a phone word, without one."""

    entity = PHONE_NUMBER
    _mobile = re.compile(
        r"(?<![0-9A-Za-z+])(?:(?:\+|00)?86[ .-]?|\((?:\+|00)?86\)[ .-]?)?"
        + _MOBILE
        + r"(?:[0-9]{8}|[ -][0-9]{4}[ -][0-9]{4}|[0-9]{4} [0-9]{4}|-[0-9]{4}-[0-9]{4}"
        + r"|\.[0-9]{4}\.[0-9]{4}|[0-9]{4}\.[0-9]{4})"
        + NUM_END
    )
    _landline = re.compile(
        NUM_START
        + r"(?:(?:\+86[ -]?)?(?:\(0[1-9][0-9]{1,2}\)|（0[1-9][0-9]{1,2}）|0[1-9][0-9]{1,2}[ -])[2-9][0-9]{6,7}|0(?:10|2[0-9]|[3-9][0-9]{2})[2-9][0-9]{6,7})"
        + r"(?:(?:-|转|ext\.?)[0-9]{1,5})?"
        + NUM_END
    )
    _local = re.compile(NUM_START + r"[2-9][0-9]{6,7}" + NUM_END)
    words = Context(
        ("电话", "手机", "联系方式", "座机", "号码", "Tel", "TEL", "tel", "致电", "拨打", "联系"),
        NOT_PERSONAL,
        window=10,
    )

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for m in self._mobile.finditer(text):
            yield m.start(), m.end(), 0.95
        for m in self._landline.finditer(text):
            spaced = any(c in m.group() for c in " -()（")
            if self.words.has_negative(text, m.start()) and not spaced:
                continue
            yield (
                m.start(),
                m.end(),
                0.9 if spaced or self.words.has_positive(text, m.start()) else 0.6,
            )
        for m in self._local.finditer(text):
            if self.words.has_positive(text, m.start()) and not self.words.has_negative(
                text, m.start()
            ):
                yield m.start(), m.end(), 0.7


class CnEmailRecognizer(ChineseRecognizer):
    """E-mail addresses, ASCII only: presidio's \\w-based pattern would swallow the Chinese
    word before the address (邮箱zhang@qq.com), and its tldextract check can reach the network."""

    entity = EMAIL_ADDRESS
    _pattern = re.compile(
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_])?@"
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
    )

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for m in self._pattern.finditer(text):
            yield m.start(), m.end(), 0.95


# 省、自治区、直辖市 abbreviations used on plates, plus 使 (embassies) and 领 (consulates).
_PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领"


class CnVehiclePlateRecognizer(ChineseRecognizer):
    """机动车号牌 (GA 36): province character, issuing-office letter, then 5 characters
    (6 on new-energy plates), or 4 plus 挂/学/警/港/澳; an optional middle dot."""

    entity = VEHICLE_PLATE
    _pattern = re.compile(
        f"[{_PLATE_PROVINCES}]"
        + r"[A-HJ-NP-Z][·•・ ]?(?:[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF]|[A-HJ-NP-Z0-9]{5}|[A-HJ-NP-Z0-9]{4}[挂学警港澳])"
        + NUM_END
    )

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for m in self._pattern.finditer(text):
            tail = m.group()[2:]
            if sum(c.isdigit() for c in tail) >= 2:
                yield m.start(), m.end(), 0.9
