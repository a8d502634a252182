"""Purposes (用途): a registered code, an optional case reference, desensitized free text.

A purpose is never a carrier of personal data. What a caller sends is
resolved once, at the input edge, into the *stored form* every later step
records (audit trail, audit index, usage reports, impact previews, grants):

    <code>[ <case reference>][: <desensitized text>]

    household_registration
    household_registration (2024)川3221民初123号
    household_registration: 为**办理户籍迁入
    other: 为**核对低保材料

- The code is one of the registry's (`policies/data/purposes.json`, shipped
  in the policy bundle as `data.purposes`): code, title, legal basis, the
  caller kinds and datasets it may serve (empty: any), and aliases, the plain
  texts existing callers send (`户籍业务办理` is `household_registration`).
  A text that is a code or an alias is that code, with no analysis at all.
- A text that starts with a code or alias and goes on after a separator
  (`户籍业务办理：为陈凯办理户籍迁入`) is that code plus the rest as free text.
- Any other text is the generic code `other` with the whole text as free
  text: existing callers keep working, and grants bound to such a purpose
  still bind the exact (desensitized) text.
- A case reference (a court case number `(2024)川3221民初123号` or an agency
  file number `川公刑立字〔2024〕123号`) anywhere in the text is taken out,
  validated by pattern and kept verbatim after the code.
- Free text is desensitized by the project's own recognizers
  (masking.text): ID numbers and phone numbers, in any separator style, are
  refused (PURPOSE_CONTAINS_PERSONAL_DATA) and never stored; every other
  entity found (names, addresses, cards, plates, e-mail) is masked, one `*`
  per character.

The stored form is itself a valid input and resolves to itself, so grants,
re-validation and replays are stable. Results are cached (bounded LRU): the
analyzer runs once per distinct unregistered text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "policies" / "data" / "purposes.json"

MAX_LENGTH = 200
CODE = re.compile(r"[a-z][a-z0-9_]*")
# Between a code or alias and the free text that follows it.
_SEPARATOR = re.compile(r"[\s:：,，;；、/|\-—]+")
# Court case numbers: (2024)川3221民初123号; agency file numbers: 川公刑立字〔2024〕123号,
# 汶民发[2024]12号 (at the start, after a separator or after 文号/案号, so that the
# words before it are not taken for the issuing agency). The year is bracketed and
# the serial short: never a personal number.
# A court is a province's abbreviation and its court code, or the Supreme People's
# Court; an issuing agency's abbreviation ends with the document kind (发, 函, 字, ...).
# So a name (陈凯〔2024〕1号, (2024)陈凯民初1号) is never taken for either.
_PROVINCES = "京津冀晋蒙辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川贵黔云滇藏陕甘青宁新港澳台兵"
CASE_REFERENCE = re.compile(
    r"\((?:19|20)[0-9]{2}\)(?:[" + _PROVINCES + r"][0-9]{2,6}|最高法)"
    r"[\u4e00-\u9fff]{1,4}[0-9]{1,6}号"
    r"|(?:^|(?<=[\s:：,，;；、])|(?<=案号)|(?<=文号)|(?<=卷宗号)|(?<=立案号))"
    r"[\u4e00-\u9fff]{0,7}[发函字办复令通告决报批呈](?:〔(?:19|20)[0-9]{2}〕|\[(?:19|20)[0-9]{2}\])"
    r"[0-9]{1,6}号"
)
_CASE_LABEL = re.compile(r"(?:案号|文号|卷宗号|立案号)[\s:：]*$")
_LEADING_LABEL = re.compile(r"^(?:案号|文号|卷宗号|立案号)[\s:：]*")
# Quick, analyzer-free checks on a copy where every decimal digit (any script) and
# Chinese numeral is an ASCII digit and short runs of punctuation, symbols or spaces
# between digits are removed (513221—19860412—0890, 136/4853/0186, 一三六…): an
# ID-number-shaped or mobile-shaped run is refused whether or not it is valid.
_CN_DIGITS = str.maketrans("〇零一二三四五六七八九幺两", "0012345678912")
_DIGIT_SEPARATORS = re.compile(r"(?<=[0-9])[^\w]{1,3}(?=[0-9Xx])|(?<=[0-9])_{1,3}(?=[0-9Xx])")
_ID_LIKE = re.compile(r"(?<![0-9])[0-9]{15}(?:[0-9]{2}[0-9Xx])?(?![0-9])")
_PHONE_LIKE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86)?1[3-9][0-9]{9}(?![0-9])")
# Whoever a service is done for, or whose matter it is: the words around a person in
# a purpose, whatever the name (Tibetan and Qiang names have no surname to go by).
_VERBS = (
    "办理|补办|代办|申请|申领|核实|核查|核对|核验|查询|认证|迁入|迁出|落户|登记|开具|出具"
    "|领取|换领|变更|注销|更正|复核|审核|确认|提供|发放"
)
_WHO = r"(?P<who>[\u4e00-\u9fff·][\u4e00-\u9fff·\s]{1,6}?)"
_SERVED_PERSON = (
    # 为扎西多吉办理, 给陈 凯补办, 协助泽仁拉姆核实 (为 not inside 作为/认为/行为/因为…)
    re.compile(
        r"(?:(?<![作认行因成称视改更以较])为|给|替|帮|协助|帮助|陪同)" + _WHO + "(?=" + _VERBS + ")"
    ),
    # 泽仁拉姆的户籍迁入: a purpose that starts with someone's matter
    re.compile(r"^(?P<who>[\u4e00-\u9fff·]{2,4}?)的"),
    # what only looks like a case or file number: 陈凯〔2024〕1号, (2024)陈凯民初1号
    re.compile(_WHO + r"(?=[〔\[](?:19|20)[0-9]{2}[〕\]])"),
    re.compile(r"\((?:19|20)[0-9]{2}\)" + _WHO + "(?=[民刑行执赔])"),
)
_GROUP_WORDS = frozenset(
    [
        "本人",
        "群众",
        "企业",
        "单位",
        "家属",
        "当事人",
        "申请人",
        "老人",
        "儿童",
        "学生",
        "患者",
        "居民",
        "村民",
        "职工",
        "个人",
        "他人",
        "市民",
        "农户",
        "困难群众",
        "低保户",
        "残疾人",
        "退役军人",
        "外来人员",
        "流动人口",
        "新生儿",
        "辖区居民",
        "办事群众",
    ]
)
# Entity types whose presence refuses the purpose rather than masking it.
REFUSED_ENTITIES = frozenset({"ID_NUMBER", "PHONE_NUMBER"})
MASK_CHAR = "*"


class PurposeError(ValueError):
    """A purpose that cannot be stored; `reason` is the ErrorInfo reason."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


@dataclass(frozen=True)
class Purpose:
    code: str
    title: str
    legal_basis: str
    caller_kinds: tuple[str, ...]  # empty: any
    datasets: tuple[str, ...]  # empty: any
    aliases: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "legal_basis": self.legal_basis,
            "caller_kinds": list(self.caller_kinds),
            "datasets": list(self.datasets),
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class Registry:
    purposes: Mapping[str, Purpose]
    other: str
    by_text: Mapping[str, str]  # code or alias (NFKC) -> code
    heads: tuple[str, ...]  # codes and aliases, longest first, for prefix matching

    def get(self, code: str) -> Purpose | None:
        return self.purposes.get(code)


def parse(doc: Mapping[str, Any]) -> Registry:
    """The registry from its JSON document; ValueError naming the first problem."""
    other = doc.get("other", "other")
    purposes: dict[str, Purpose] = {}
    by_text: dict[str, str] = {}
    for i, p in enumerate(doc.get("purposes") or ()):
        code = p.get("code")
        if not isinstance(code, str) or not CODE.fullmatch(code):
            raise ValueError(f"purposes[{i}].code must match {CODE.pattern}")
        if code in purposes:
            raise ValueError(f"purposes[{i}].code {code} is repeated")
        if not str(p.get("title", "")).strip() or not str(p.get("legal_basis", "")).strip():
            raise ValueError(f"purpose {code}: title and legal_basis are required")
        aliases = tuple(unicodedata.normalize("NFKC", a).strip() for a in p.get("aliases") or ())
        purposes[code] = Purpose(
            code,
            str(p["title"]),
            str(p["legal_basis"]),
            tuple(p.get("caller_kinds") or ()),
            tuple(p.get("datasets") or ()),
            aliases,
        )
        for text in (code, *aliases):
            if by_text.get(text, code) != code:
                raise ValueError(f"purpose {code}: {text!r} already names {by_text[text]}")
            by_text[text] = code
    if other not in purposes:
        raise ValueError(f"the generic code {other!r} is not registered")
    heads = tuple(sorted(by_text, key=len, reverse=True))
    return Registry(purposes, other, by_text, heads)


def load(path: Path = DEFAULT_REGISTRY) -> Registry:
    return parse(json.loads(Path(path).read_text(encoding="utf-8")))


@cache
def registry() -> Registry:
    """The registry shipped with the gateway (policies/data/purposes.json)."""
    return load()


# ----- resolving ------------------------------------------------------------------------


def _malformed(text: str) -> bool:
    """Control, format and line/paragraph separator characters: header-like or hidden text."""
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


def _as_ascii_digits(text: str) -> str:
    out = []
    for c in text.translate(_CN_DIGITS):
        d = unicodedata.decimal(c, None)
        out.append(str(d) if d is not None else c)
    return "".join(out)


def holds_personal_number(text: str) -> bool:
    """Is there an ID-number-shaped or mobile-shaped run in the text, in any script's
    digits and any separator style? (Identifiers people choose: a caller id.)"""
    collapsed = _DIGIT_SEPARATORS.sub("", _as_ascii_digits(text))
    return bool(_ID_LIKE.search(collapsed) or _PHONE_LIKE.search(collapsed))


def _refuse_numbers(text: str) -> None:
    if holds_personal_number(text):
        raise PurposeError(
            "PURPOSE_CONTAINS_PERSONAL_DATA", "must not contain an ID number or phone number"
        )


def _take_case_reference(text: str) -> tuple[str, str]:
    """(case reference or "", the text without it and its label)."""
    m = CASE_REFERENCE.search(text)
    if m is None:
        return "", text
    ref = _LEADING_LABEL.sub("", m.group())
    before = _CASE_LABEL.sub("", text[: m.start()])
    rest = (before.rstrip(" :：,，;；、") + " " + text[m.end() :].lstrip(" :：,，;；、")).strip()
    return ref, rest


def _split_head(reg: Registry, text: str) -> tuple[str, str]:
    """(code, free text): a leading code or alias followed by a separator, else `other`."""
    code = reg.by_text.get(text)
    if code is not None:
        return code, ""
    for head in reg.heads:
        if text.startswith(head):
            sep = _SEPARATOR.match(text, len(head))
            if sep is not None:
                return reg.by_text[head], text[sep.end() :].strip()
    return reg.other, text


def desensitize(text: str) -> str:
    """The free text with every entity the recognizers find masked; PurposeError when
    it holds an ID number or a phone number (those are refused, not masked)."""
    from masking.text.analyzer import text_analyzer  # presidio: built once per process
    from masking.text.names import bare_name

    _refuse_numbers(text)
    found = text_analyzer().analyze(text)
    if any(e.type in REFUSED_ENTITIES for e in found):
        raise PurposeError(
            "PURPOSE_CONTAINS_PERSONAL_DATA", "must not contain an ID number or phone number"
        )
    if not found and bare_name(text):
        return MASK_CHAR * len(text)  # the whole purpose is a name: 陈凯
    out = list(text)
    for e in found:
        out[e.start : e.end] = MASK_CHAR * (e.end - e.start)
    # A purpose is a short phrase about one person: whoever a service is done for, or
    # whose matter it is, is masked even without a surname the recognizers know
    # (为扎西多吉办理, 泽仁拉姆的户籍迁入). Masking a word that was no name (为群众办理
    # is kept, a listed group word) loses a little meaning, never personal data.
    for pattern in _SERVED_PERSON:
        for m in pattern.finditer(text):
            if m.group("who").strip() not in _GROUP_WORDS:
                start, end = m.span("who")
                out[start:end] = MASK_CHAR * (end - start)
    return "".join(out)


@lru_cache(maxsize=4096)
def _resolve(text: str) -> tuple[str, str]:
    """(stored form, "") or ("", error reason + "\\0" + description), for NFKC text."""
    try:
        return _resolve_uncached(text), ""
    except PurposeError as e:
        return "", f"{e.reason}\0{e.description}"


def _resolve_uncached(text: str) -> str:
    reg = registry()
    if text in reg.by_text:
        return reg.by_text[text]
    ref, rest = _take_case_reference(text)
    code, free = _split_head(reg, rest) if rest else (reg.other, "")
    if code == reg.other and not free and not ref:
        return code
    if free:
        free = desensitize(free)
    return code + (" " + ref if ref else "") + (": " + free if free else "")


@lru_cache(maxsize=1024)
def _clean(text: str) -> tuple[str, str]:
    try:
        return desensitize(text), ""
    except PurposeError as e:
        return "", f"{e.reason}\0{e.description}"


def _checked(value: str) -> str:
    text = unicodedata.normalize("NFKC", value or "").strip()
    if not text:
        raise PurposeError("PURPOSE_MISSING", "is required: say why the data is needed")
    if len(text) > MAX_LENGTH:
        raise PurposeError("PURPOSE_TOO_LONG", f"is longer than {MAX_LENGTH} characters")
    if _malformed(text):
        raise PurposeError("PURPOSE_MALFORMED", "contains control or line-break characters")
    return text


def _unpack(result: tuple[str, str]) -> str:
    stored, error = result
    if error:
        reason, description = error.split("\0", 1)
        raise PurposeError(reason, description)
    return stored


def resolve(value: str) -> str:
    """The stored form of a purpose as a caller sent it; PurposeError if it cannot be stored."""
    return _unpack(_resolve(_checked(value)))


def clean_text(value: str) -> str:
    """Other recorded free text (a reason, a title, a scenario): the same checks and
    desensitization as a purpose's free text, without a code."""
    return _unpack(_clean(_checked(value)))


# ----- reading stored forms --------------------------------------------------------------


def code(stored: str) -> str:
    """The code of a stored purpose ("" when `stored` is not a stored form)."""
    m = CODE.match(stored)
    if m is None or registry().get(m.group()) is None:
        return ""
    end = m.end()
    return m.group() if end == len(stored) or stored[end] in " :" else ""


def title(stored: str) -> str:
    """A reader's rendering: the code's title, then the case reference and text."""
    c = code(stored)
    p = registry().get(c)
    if p is None:
        return stored
    return p.title + stored[len(c) :]


def serves(purpose: Purpose, caller_kind: str, dataset: str) -> bool:
    """May this purpose serve a caller of this kind reading this dataset? (empty lists: any)"""
    kinds_ok = not purpose.caller_kinds or caller_kind in purpose.caller_kinds
    return kinds_ok and (not purpose.datasets or not dataset or dataset in purpose.datasets)
