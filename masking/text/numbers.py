"""Recognizers for numbers: ID numbers, USCC, bank cards, phones.

Each validates what it can (python-stdnum for check digits and the GB/T 2260
region table) so that order numbers, amounts and dates that merely look like
identifiers are left alone. Every one is found plain, full-width (folded by
base.normalize) and written in groups (base.Grouped: spaces, hyphens, dots,
a line break), and masked whole.
"""

from __future__ import annotations

import datetime
import re
from functools import cache

from stdnum import luhn, numdb
from stdnum.cn import ric, uscc

from masking.text.base import (
    NUM_END,
    NUM_START,
    ChineseRecognizer,
    Context,
    Grouped,
    Hit,
    Pattern,
    Scores,
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
def region_known(code: str) -> bool:
    """Is this 6-digit code a county-level unit of the GB/T 2260 table (any era)?"""
    parts = numdb.get("cn/loc").info(code)
    return len(parts) == 2 and all(props for _, props in parts)


def _real_date(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def looks_like_id(digits: str) -> bool:
    """18 characters with an ID number's shape: a known region and a real birth date,
    whatever the check digit."""
    if len(digits) != 18 or not digits[:17].isdigit() or digits[-1] not in "0123456789Xx":
        return False
    if not _real_date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14])):
        return False
    return region_known(digits[:6])


def _id_shaped(digits: str) -> bool:
    """Shaped like an ID number before any table is read: a birth year at 7-10."""
    return len(digits) == 18 and digits[6:8] in ("18", "19", "20")


class CnIdNumberRecognizer(ChineseRecognizer):
    """18-character ID numbers (GB 11643) and the 15-digit ones issued before 1999.

    A valid GB/T 2260 county code and a real birth date make an ID number
    whatever its check digit: clerks mistype one digit (…与系统不符) and the
    rest still identifies the person. A right check digit (stdnum.cn.ric)
    scores highest; a wrong one less, and not next to an order-number word.
    The 15-digit form has no check digit: a known county and a real YYMMDD.
    Next to an ID word, 17 or 19 digits that start with a county and a birth
    date are an ID number with a digit left out or typed twice.
    """

    entity = "ID_NUMBER"
    title = "身份证号"
    scores = Scores(
        valid=1.0,  # check digit, date and county all right
        wrong_check_near_word=0.9,  # 身份证号 before it
        wrong_check=0.8,
        old15_near_word=0.95,
        old15=0.6,
        digit_count_typo_near_word=0.7,  # 身份证号 + 17 or 19 digits
    )
    _18 = r"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}[0-9Xx]"
    _15 = r"[1-9][0-9]{5}[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}"
    patterns = (
        Pattern("id18", re.compile(NUM_START + _18 + NUM_END)),
        Pattern("id15", re.compile(NUM_START + _15 + NUM_END)),
        Grouped("grouped", frozenset((15, 18)), re.compile(_18 + "|" + _15)),
        Pattern("digit_count_typo", re.compile(NUM_START + r"[1-9][0-9]{15,17}[0-9Xx]" + NUM_END)),
    )
    context = Context(("身份证", "身份号", "证件号", "公民身份", "证号"), NOT_PERSONAL)

    def validate(self, hit: Hit, text: str) -> float | None:
        number, s = hit.value, self.scores
        near_word = self.context.has_positive(text, hit.start)
        if hit.pattern == "digit_count_typo":
            if len(number) not in (17, 19) or not near_word:
                return None
            born = _real_date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
            return s.digit_count_typo_near_word if born and region_known(number[:6]) else None
        if len(number) == 18:
            if not looks_like_id(number):
                return None  # a county that never was, or a date that cannot be
            if ric.calc_check_digit(number) == number[-1].upper():
                return s.valid
            if self.context.has_negative(text, hit.start) and not near_word:
                return None  # an order number that happens to look like one
            return s.wrong_check_near_word if near_word else s.wrong_check
        if not _real_date(1900 + int(number[6:8]), int(number[8:10]), int(number[10:12])):
            return None
        if not region_known(number[:6]) or self.context.has_negative(text, hit.start):
            return None
        return s.old15_near_word if near_word else s.old15


_USCC = r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}"


class CnUsccRecognizer(ChineseRecognizer):
    """统一社会信用代码: 18 characters, GB 32100 check character (stdnum.cn.uscc)."""

    entity = "USCC"
    title = "统一社会信用代码"
    scores = Scores(valid=0.98)
    patterns = (
        Pattern("plain", re.compile(NUM_START + _USCC + NUM_END)),
        Grouped("grouped", frozenset((18,)), re.compile(_USCC), "0123456789ABCDEFGHJKLMNPQRTUWXY"),
    )
    context = Context(
        ("信用代码", "社会信用", "USCC", "注册号", "纳税人识别号", "税号"), NOT_PERSONAL, window=16
    )

    def validate(self, hit: Hit, text: str) -> float | None:
        code = hit.value.upper()
        # One in 31 digit strings passes the check character: a code of digits (its
        # last may be X, as an ID number's) shaped like an ID number, or next to an
        # order word, needs a USCC word.
        suspect = _id_shaped(code) or self.context.has_negative(text, hit.start)
        if code[:17].isdigit() and suspect and not self.context.has_positive(text, hit.start):
            return None
        return self.scores.valid if uscc.is_valid(code) else None


class CnBankCardRecognizer(ChineseRecognizer):
    """Bank card numbers: 15-19 digits (in groups or not), Luhn, a card-issuer prefix.

    Without context a Luhn-valid number must also start like a real card
    (UnionPay 62, 60; Visa 4; Mastercard 51-55 and 2221-2720; JCB 35; Amex
    34/37) and not be shaped like an ID number; an order or serial number
    word nearby rules it out.
    """

    entity = "BANK_CARD"
    title = "银行卡号"
    scores = Scores(near_word=0.95, issuer_prefix=0.7, mistyped_near_word=0.8)
    patterns = (
        Pattern("plain", re.compile(NUM_START + r"[0-9]{15,19}" + NUM_END)),
        Grouped("grouped", frozenset(range(15, 20)), re.compile(r"[0-9]{15,19}")),
    )
    context = Context(
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

    def validate(self, hit: Hit, text: str) -> float | None:
        digits = hit.value
        # The cheap tests first, Luhn last: digit-dense text makes many candidates.
        near = self.context.has_positive(text, hit.start)
        if near:
            score = self.scores.near_word
        elif self.context.has_negative(text, hit.start) or _id_shaped(digits):
            return None  # an order number, or an ID number (however mistyped)
        elif len(digits) >= 16 and self._issuer_like(digits):
            score = self.scores.issuer_prefix
        else:
            return None
        if luhn.is_valid(digits):
            return score
        # A mistyped card number next to a card word still names an account, as a
        # mistyped ID number names a person: masked whole (not a Luhn-valid run inside it).
        if near and len(digits) >= 16 and self._issuer_like(digits):
            return self.scores.mistyped_near_word
        return None


# Mobile prefixes allocated in mainland China (MIIT numbering plan).
_MOBILE = r"1(?:3[0-9]|4[5-9]|5[0-35-9]|6[2567]|7[0-8]|8[0-9]|9[0-35-9])"


class CnPhoneRecognizer(ChineseRecognizer):
    """Mobile numbers (11 digits, allocated prefixes, optional +86/0086 and any grouping)
    and landlines with an area code (010, 02x, 0xxx) or, next to a phone word, without one."""

    entity = "PHONE_NUMBER"
    title = "电话号码"
    scores = Scores(mobile=0.95, landline_marked=0.9, landline=0.6, local_near_word=0.7)
    patterns = (
        Pattern(
            "mobile",
            re.compile(
                r"(?<![0-9A-Za-z+])(?:(?:\+|00)?86[ .-]?|\((?:\+|00)?86\)[ .-]?)?"
                + _MOBILE
                + r"(?:[0-9]{8}|[ -][0-9]{4}[ -][0-9]{4}|[0-9]{4} [0-9]{4}|-[0-9]{4}-[0-9]{4}"
                + r"|\.[0-9]{4}\.[0-9]{4}|[0-9]{4}\.[0-9]{4})"
                + NUM_END
            ),
        ),
        # 138 0013\n8000, 1380 013 8000: mobiles in any grouping.
        Grouped("mobile", frozenset((11,)), re.compile(_MOBILE + r"[0-9]{8}")),
        Pattern(
            "landline",
            re.compile(
                NUM_START
                + r"(?:(?:\+86[ -]?)?(?:\(0[1-9][0-9]{1,2}\)|（0[1-9][0-9]{1,2}）|0[1-9][0-9]{1,2}[ -])[2-9][0-9]{6,7}|0(?:10|2[0-9]|[3-9][0-9]{2})[2-9][0-9]{6,7})"
                + r"(?:(?:-|转|ext\.?)[0-9]{1,5})?"
                + NUM_END
            ),
        ),
        Pattern("local", re.compile(NUM_START + r"[2-9][0-9]{6,7}" + NUM_END)),
    )
    context = Context(
        ("电话", "手机", "联系方式", "座机", "号码", "Tel", "TEL", "tel", "致电", "拨打", "联系"),
        NOT_PERSONAL,
        window=10,
    )

    def validate(self, hit: Hit, text: str) -> float | None:
        s = self.scores
        if hit.pattern == "mobile":
            return s.mobile
        positive = self.context.has_positive(text, hit.start)
        negative = self.context.has_negative(text, hit.start)
        if hit.pattern == "landline":
            marked = any(c in hit.value for c in " -()（")
            if negative and not marked:
                return None
            return s.landline_marked if marked or positive else s.landline
        return s.local_near_word if positive and not negative else None
