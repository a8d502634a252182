"""Recognizers for identifiers that are not check-digit numbers: passports and travel
permits, e-mail addresses, vehicle plates, QQ numbers and WeChat ids.

QQ numbers (5-12 digits) and WeChat ids (letters, digits, _ and -) look like
anything on their own; they are taken only right after their label
(QQ：12345678, QQ号, 微信号：wxid_abc123), and the label stays readable.
"""

from __future__ import annotations

import re

from masking.text.base import NUM_END, NUM_START, ChineseRecognizer, Context, Hit, Pattern, Scores
from masking.text.numbers import NOT_PERSONAL


class CnPassportRecognizer(ChineseRecognizer):
    """Chinese passports (E + 8 digits, E + letter + 7 digits, G/D/S/P + 7-8 digits), and
    travel permits to Hong Kong, Macao and Taiwan (C/L/T/H/M + 8 digits) next to their names.
    """

    entity = "PASSPORT"
    title = "护照号码"
    scores = Scores(near_word=0.95, passport=0.6, permit_near_word=0.9)
    patterns = (
        Pattern(
            "passport",
            re.compile(
                NUM_START + r"(?:E[0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|[GDSP][0-9]{7,8})" + NUM_END
            ),
        ),
        Pattern("permit", re.compile(NUM_START + r"[CLTHM][0-9]{8}" + NUM_END)),
    )
    context = Context(
        ("护照", "通行证", "旅行证", "Passport", "passport", "证件号"), NOT_PERSONAL, window=14
    )

    def validate(self, hit: Hit, text: str) -> float | None:
        positive = self.context.has_positive(text, hit.start)
        if hit.pattern == "permit":
            return self.scores.permit_near_word if positive else None
        if positive:
            return self.scores.near_word
        return None if self.context.has_negative(text, hit.start) else self.scores.passport


class CnEmailRecognizer(ChineseRecognizer):
    """E-mail addresses, ASCII only: presidio's \\w-based pattern would swallow the Chinese
    word before the address (邮箱zhang@qq.com), and its tldextract check can reach the network."""

    entity = "EMAIL_ADDRESS"
    title = "电子邮箱"
    scores = Scores(address=0.95)
    patterns = (
        Pattern(
            "address",
            re.compile(
                r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_])?@"
                r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
            ),
        ),
    )


# 省、自治区、直辖市 abbreviations used on plates, plus 使 (embassies) and 领 (consulates).
_PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领"


class CnVehiclePlateRecognizer(ChineseRecognizer):
    """机动车号牌 (GA 36): province character, issuing-office letter, then 5 characters
    (6 on new-energy plates), or 4 plus 挂/学/警/港/澳; an optional middle dot."""

    entity = "VEHICLE_PLATE"
    title = "车牌号"
    scores = Scores(plate=0.9)
    patterns = (
        Pattern(
            "plate",
            re.compile(
                f"[{_PLATE_PROVINCES}]"
                + r"[A-HJ-NP-Z][·•・ ]?(?:[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF]|[A-HJ-NP-Z0-9]{5}|[A-HJ-NP-Z0-9]{4}[挂学警港澳])"
                + NUM_END
            ),
        ),
    )

    def validate(self, hit: Hit, text: str) -> float | None:
        # At least two digits after the office letter: 川A·BCDEF is a word, not a plate.
        return self.scores.plate if sum(c.isdigit() for c in hit.value[2:]) >= 2 else None


# Between a label and its value: spaces, a colon, 为/是.
_LABEL_GAP = r"[ \t]*(?:号码|账号|号)?[ \t]*(?:[:：]|为|是)?[ \t]*"


class CnQqRecognizer(ChineseRecognizer):
    """QQ numbers after their label: QQ：12345678, QQ号 12345678, qq号码为123456789,
    QQ/微信：12345678 (one number for both)."""

    entity = "QQ_NUMBER"
    title = "QQ号"
    # Above a mobile's score: QQ号13800138000 is a QQ number (masked either way).
    scores = Scores(after_label=0.98)
    patterns = (
        Pattern(
            "after_label",
            re.compile(
                r"(?<![A-Za-z])(?:QQ|qq|Qq)(?:[/、](?:微信|WeChat|VX|vx)号?)?"
                + _LABEL_GAP
                + r"(?P<v>[1-9][0-9]{4,11})(?![0-9A-Za-z@])"
            ),
            "v",
        ),
    )


class CnWechatRecognizer(ChineseRecognizer):
    """WeChat ids after their label: 微信号：wxid_abc123, 微信 zhang-san_88, WeChat: …
    A WeChat id is 6-25 letters, digits, _ and -, starting with a letter (a mobile
    number given as the id is the phone recognizer's)."""

    entity = "WECHAT_ID"
    title = "微信号"
    scores = Scores(after_label=0.95)
    patterns = (
        Pattern(
            "after_label",
            re.compile(
                r"(?:微信|(?<![A-Za-z])(?:WeChat|Wechat|wechat|WECHAT|VX|vx|Vx))(?:ID|id)?"
                + _LABEL_GAP
                + r"(?P<v>[A-Za-z][A-Za-z0-9_-]{5,24})(?![A-Za-z0-9_@.-])"
            ),
            "v",
        ),
    )
