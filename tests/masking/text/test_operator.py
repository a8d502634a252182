"""The pii_text operator: per-entity treatments from the plan, defaults, validation."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.catalog import Treatment
from gateway.catalog import load as load_catalog
from masking import MaskingContext, MaskingError, apply_treatment, get_operator
from masking.text.operator import desensitize

CTX = MaskingContext("agency-a", b"k" * 32, datetime.date(2026, 1, 1))
TEXT = "当事人张三（男，身份证号513221198001011230）于2023年3月在汶川县威州镇羌锋村2组8号经营，电话13800001234。"


@pytest.mark.requirement("R7")
def test_each_type_gets_the_plan_s_operator_and_the_rest_the_default() -> None:
    params = {
        "entities": {
            "PERSON": {"operator": "mask", "params": {"keep_first": 1}},
            "ID_NUMBER": {"operator": "pseudonym", "params": {"scope": "credit"}},
            "PHONE_NUMBER": {"operator": "keep"},
        }
    }
    out, report = desensitize(TEXT, params, CTX)
    assert "张*（男" in out
    assert "513221198001011230" not in out and "身份证号ps_" in out
    assert "13800001234" in out  # the plan said keep
    assert "威州镇" not in out and "***" in out  # ADDRESS: default full mask
    assert [(r["type"], r["operator"]) for r in report] == [
        ("PERSON", "mask"),
        ("ID_NUMBER", "pseudonym"),
        ("ADDRESS", "mask"),
        ("PHONE_NUMBER", "keep"),
    ]
    assert TEXT[report[1]["start"] : report[1]["end"]] == "513221198001011230"


def test_an_address_the_generalizer_cannot_place_is_masked_not_dropped() -> None:
    params = {
        "entities": {
            "ADDRESS": {
                "operator": "generalize",
                "params": {"kind": "address", "level": "district"},
            }
        }
    }
    out, _ = desensitize("家住汶川县威州镇羌锋村2组8号。", params, CTX)
    assert out == "家住" + "*" * len("汶川县威州镇羌锋村2组8号") + "。"
    out, _ = desensitize("迁往四川省成都市武侯区人民南路4段12号。", params, CTX)
    assert out == "迁往四川省成都市武侯区。"


@pytest.mark.requirement("R7")
def test_the_catalog_shares_credit_content_through_pii_text() -> None:
    field = load_catalog().get("credit.record").field("content")
    assert field.free_text and field.share.operator == "pii_text"
    out = apply_treatment(field.share, TEXT, CTX)
    assert "513221********1230" in out and "138****1234" in out and "张*" in out
    assert field.open.operator == "redact"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"entities": {"FOO": {"operator": "mask"}}}, "entities"),
        ({"entities": []}, "entities"),
        ({"entities": {"PERSON": {"operator": "pii_text"}}}, "entities.PERSON"),
        ({"entities": {"PERSON": {"operator": "mask", "extra": 1}}}, "entities.PERSON"),
        ({"entities": {"PERSON": "mask"}}, "entities.PERSON"),
        ({"default": {"operator": "nope"}}, ""),
        (
            {"entities": {"PERSON": {"operator": "mask", "params": {"keep_first": -1}}}},
            "keep_first",
        ),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_params_fail_before_any_text_is_read(params: dict, param: str) -> None:
    with pytest.raises(MaskingError) as e:
        get_operator("pii_text").check_params(params)
    assert e.value.param == param or e.value.operator in ("nope", "mask")
    with pytest.raises(MaskingError):
        apply_treatment(Treatment("pii_text", params), None, CTX)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=80))
def test_any_text_keeps_its_shape_outside_entities(text: str) -> None:
    out, report = desensitize(text, {}, CTX)
    # Default full masks keep length; nothing outside a span changes.
    assert len(out) == len(text)
    covered = set()
    for r in report:
        covered.update(range(r["start"], r["end"]))
        assert set(out[r["start"] : r["end"]]) == {"*"}
    assert all(out[i] == text[i] for i in range(len(text)) if i not in covered)


@pytest.mark.requirement("R7")
def test_a_number_split_across_lines_is_masked_whole_and_the_lines_stay() -> None:
    text = "身份证号码5132211986\n04120890，电话138 0013\r\n8000。"
    out, report = desensitize(text, {}, CTX)
    assert out == "身份证号码**********\n********，电话********\r\n****。"
    assert [r["type"] for r in report] == ["ID_NUMBER", "PHONE_NUMBER"]
