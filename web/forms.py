"""The page's forms: checked here first, so a mistyped number is never sent.

The gateway checks everything again (and its BadRequest violations are shown
next to the same fields); these checks only spare the citizen a refused call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

OTHER = "__other__"  # the select's free-text choice
DEFAULT_PURPOSES = Path(__file__).resolve().parent.parent / "policies" / "data" / "purposes.json"
_REGION = re.compile(r"^\d{2,6}$")


def counter_purposes(path: Path = DEFAULT_PURPOSES) -> list[str]:
    """The registered purposes a counter caller may state (their titles)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # free text only: the gateway still judges it
    return [
        p["title"]
        for p in doc.get("purposes", [])
        if "counter" in p.get("caller_kinds", []) and p.get("title")
    ]


def mask_id(value: str) -> str:
    """At most the region's first 4 and the last 4 characters: 5132**********1234."""
    v = value.strip().upper()
    return v[:4] + "*" * (len(v) - 8) + v[-4:] if len(v) > 8 else "*" * len(v)


def mask_name(value: str) -> str:
    v = value.strip()
    return v[:1] + "*" * (len(v) - 1) if v else ""


def id_number_error(value: str) -> str:
    """'' when the ID number is well formed, else what is wrong (no digits echoed)."""
    v = value.strip().upper()
    if not v:
        return "请填写身份证号码"
    if len(v) != 18:
        return f"身份证号码应为 18 位，现为 {len(v)} 位"
    if not re.fullmatch(r"\d{17}[\dX]", v):
        return "身份证号码只能是数字，最后一位可为 X"
    try:
        ric.validate(v)
    except stdnum_errors.InvalidChecksum:
        return "身份证号码校验位错误，请核对最后一位"
    except (stdnum_errors.ValidationError, KeyError):
        return "身份证号码中的出生日期或地区码无效"
    return ""


def subject_error(value: str) -> str:
    """An ID number or a unified social credit code (统一社会信用代码)."""
    v = value.strip().upper()
    if v and not v[:1].isdigit():
        try:
            uscc.validate(v)
        except stdnum_errors.ValidationError:
            return "统一社会信用代码无效"
        return ""
    if id_number_error(v) == "":
        return ""
    try:  # an all-digit USCC is possible too
        uscc.validate(v)
        return ""
    except stdnum_errors.ValidationError:
        return id_number_error(v)


@dataclass
class Form:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.values.get(name, "").strip()


def purpose_of(form: Form) -> str:
    choice = form.get("purpose")
    text = form.get("purpose_other")
    if choice == OTHER or not choice:
        if not text:
            form.errors["purpose"] = "请选择或填写核验事由"
        return text
    return choice


def identity_form(values: dict[str, str]) -> tuple[Form, str]:
    form = Form(values)
    if not form.get("name"):
        form.errors["name"] = "请填写姓名"
    problem = id_number_error(form.get("id_number"))
    if problem:
        form.errors["id_number"] = problem
    return form, purpose_of(form)


def attribute_form(values: dict[str, str]) -> tuple[Form, str, list[tuple[str, list[str]]]]:
    """The predicates ticked on the page, in the proto's names (VerifyAttributes)."""
    form = Form(values)
    problem = subject_error(form.get("subject"))
    if problem:
        form.errors["subject"] = problem
    purpose = purpose_of(form)
    predicates: list[tuple[str, list[str]]] = []
    if form.get("check_age"):
        age = form.get("age")
        if not re.fullmatch(r"\d{1,3}", age) or int(age) > 150:
            form.errors["age"] = "年龄应为 0–150 的整数"
        predicates.append(("age_at_least", [age]))
    if form.get("check_region"):
        region = form.get("region")
        if not _REGION.match(region):
            form.errors["region"] = "行政区划代码应为 2–6 位数字，如 513221"
        predicates.append(("resident_in", [region]))
    if form.get("check_licence"):
        licence = form.get("licence_type")
        if not licence:
            form.errors["licence_type"] = "请填写许可证类型"
        predicates.append(("holds_valid_licence", [licence]))
    if not predicates:
        form.errors["predicates"] = "请至少选择一项核验内容"
    return form, purpose, predicates


PREDICATE_LABELS = {
    "age_at_least": "年满 {} 周岁",
    "resident_in": "户籍在行政区划 {} 内",
    "holds_valid_licence": "持有有效的 {}",
}


def predicate_text(label: str) -> str:
    """'age_at_least(18)' -> '年满 18 周岁'."""
    m = re.fullmatch(r"(\w+)\((.*)\)", label)
    if not m or m.group(1) not in PREDICATE_LABELS:
        return label
    return PREDICATE_LABELS[m.group(1)].format(m.group(2))
