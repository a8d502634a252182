"""Masking operators: examples per operator and level, and the no-raw-value properties."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from gateway.catalog import Treatment
from masking import (
    MaskingContext,
    MaskingError,
    Operator,
    apply_treatment,
    get_operator,
    operator_names,
    register,
)
from masking import operators as operators_module
from masking.gazetteer import gazetteer

PROPERTY = settings(max_examples=200, deadline=None)
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TODAY = datetime.date(2026, 5, 1)
CTX = MaskingContext("agency.civil-affairs", KEY, TODAY)
PSEUDONYM = re.compile(r"ps_[a-z2-7]{20}")

cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
any_text = st.text(min_size=1, max_size=40)
cjk_or_any = st.one_of(st.text(cjk, min_size=1, max_size=8), any_text)


def run(operator: str, value: str | None, ctx: MaskingContext = CTX, **params: Any) -> str:
    return apply_treatment(Treatment(operator, params), value, ctx)


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["513201", "110105", "510104", "429004", "652301"]))
    born = draw(st.dates(datetime.date(1930, 1, 1), datetime.date(2025, 12, 31)))
    body = f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return body + ric.calc_check_digit(body + "0")


# --- registry ------------------------------------------------------------------


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Let a test register operators without leaking them into other tests."""
    saved = dict(operators_module._REGISTRY)
    yield
    operators_module._REGISTRY.clear()
    operators_module._REGISTRY.update(saved)


def test_builtin_operator_names() -> None:
    assert operator_names() == ["generalize", "keep", "mask", "pii_text", "pseudonym", "redact"]
    for name in operator_names():
        assert get_operator(name).name == name


@pytest.mark.parametrize("name", ["", "hash", "MASK", "keep ", "sha256"])
def test_unknown_operator_is_rejected(name: str) -> None:
    with pytest.raises(MaskingError, match="unknown masking operator") as exc:
        get_operator(name)
    assert exc.value.operator == name
    with pytest.raises(MaskingError):
        run(name, "张三")


def test_unknown_operator_is_rejected_even_for_a_missing_value() -> None:
    with pytest.raises(MaskingError):
        run("hash", None)


def test_register_adds_an_operator_by_name(scratch_registry: None) -> None:
    @register
    class Reverse(Operator):
        name = "test.reverse"

        def check_params(self, params: Mapping[str, Any]) -> None:
            pass

        def apply(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
            return value[::-1]

    assert "test.reverse" in operator_names()
    assert isinstance(get_operator("test.reverse"), Reverse)
    assert run("test.reverse", "abc") == "cba"


def test_register_refuses_a_duplicate_name(scratch_registry: None) -> None:
    class AnotherMask(Operator):
        name = "mask"

        def check_params(self, params: Mapping[str, Any]) -> None:
            pass

        def apply(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
            return value

    with pytest.raises(MaskingError, match="already registered"):
        register(AnotherMask)
    assert run("mask", "张三", keep_first=1) == "张*"


def test_non_string_value_is_rejected_without_echoing_it() -> None:
    with pytest.raises(MaskingError, match="must be a string") as exc:
        apply_treatment(Treatment("keep"), 13800138000, CTX)  # type: ignore[arg-type]
    assert "13800138000" not in str(exc.value)


# --- context -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "key", "today"),
    [
        ("", KEY, TODAY),  # pseudonyms need a caller to be scoped to
        ("c", b"", TODAY),  # an empty key is an unkeyed hash
        ("c", b"k" * 16, TODAY),
        ("c", "k" * 32, TODAY),  # str, not bytes
        ("c", KEY, datetime.datetime(2026, 5, 1, 12)),  # ages must not depend on the hour
        ("c", KEY, "2026-05-01"),
    ],
)
def test_context_rejects_bad_inputs(caller: str, key: Any, today: Any) -> None:
    with pytest.raises(MaskingError, match="masking context"):
        MaskingContext(caller, key, today)


# --- None and empty ------------------------------------------------------------


@pytest.mark.parametrize(
    "treatment",
    [
        Treatment("keep"),
        Treatment("redact"),
        Treatment("mask", {"keep_first": 1}),
        Treatment("pseudonym"),
        Treatment("generalize", {"kind": "birth_date", "level": "year"}),
        Treatment("generalize", {"kind": "address", "level": "city"}),
    ],
)
def test_missing_and_empty_values_give_empty(treatment: Treatment) -> None:
    assert apply_treatment(treatment, None, CTX) == ""
    assert apply_treatment(treatment, "", CTX) == ""


def test_bad_params_are_rejected_even_for_a_missing_value() -> None:
    with pytest.raises(MaskingError):
        apply_treatment(Treatment("mask", {"keep_first": -1}), None, CTX)


# --- keep and redact -----------------------------------------------------------


def test_keep_returns_the_raw_value() -> None:
    assert run("keep", "张三") == "张三"
    assert run("keep", "51010219850101123X") == "51010219850101123X"


@pytest.mark.parametrize("operator", ["keep", "redact"])
def test_keep_and_redact_take_no_params(operator: str) -> None:
    with pytest.raises(MaskingError, match="unknown param 'keep_first'") as exc:
        run(operator, "张三", keep_first=1)
    assert exc.value.param == "keep_first"
    assert exc.value.operator == operator


@pytest.mark.parametrize("value", ["张三", "51010219850101123X", "13800138000", " "])
def test_redact_withholds_everything(value: str) -> None:
    assert run("redact", value) == ""


@pytest.mark.requirement("R7")
@PROPERTY
@given(any_text)
def test_redact_never_returns_the_raw_value(value: str) -> None:
    assert run("redact", value) == ""


# --- mask ----------------------------------------------------------------------


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(
    ("value", "params", "expected"),
    [
        # Chinese names, as the catalog masks them for open data (keep the surname).
        ("张", {"keep_first": 1}, "*"),  # too short for the keep: masked entirely
        ("张三", {"keep_first": 1}, "张*"),
        ("李小明", {"keep_first": 1}, "李**"),
        ("欧阳娜娜", {"keep_first": 1}, "欧***"),
        # Compound surnames kept whole when the plan keeps two characters.
        ("欧阳娜娜", {"keep_first": 2}, "欧阳**"),
        ("司马光", {"keep_first": 2}, "司马*"),
        ("诸葛亮", {"keep_first": 2}, "诸葛*"),
        ("欧阳", {"keep_first": 2}, "欧*"),  # keeps reduced so at least half is masked
        ("阿依古丽·买买提", {"keep_first": 1}, "阿*******"),
        ("𠮷野家", {"keep_first": 1}, "𠮷**"),  # a CJK Extension B character is one character
        # Subject keys and numbers, as the catalog masks them for sharing.
        ("51010219850101123X", {"keep_first": 6, "keep_last": 4}, "510102********123X"),
        ("13800138000", {"keep_first": 3, "keep_last": 4}, "138****8000"),
        ("JY15132010012345", {"keep_first": 4, "keep_last": 2}, "JY15**********45"),
        # Defaults mask everything; a custom mask character.
        ("张三", {}, "**"),
        ("13800138000", {"keep_last": 4, "mask_char": "×"}, "×××××××8000"),
        # Too short for the keeps: at most half kept, first characters before last.
        ("abcd", {"keep_first": 3, "keep_last": 3}, "ab**"),
        ("abcde", {"keep_first": 1, "keep_last": 4}, "a***e"),
        ("abcde", {"keep_first": 0, "keep_last": 5}, "***de"),
        ("ab", {"keep_first": 0, "keep_last": 2}, "*b"),
    ],
)
def test_mask_examples(value: str, params: dict[str, Any], expected: str) -> None:
    assert run("mask", value, **params) == expected


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"keep_first": -1}, "keep_first"),
        ({"keep_last": -3}, "keep_last"),
        ({"keep_first": "1"}, "keep_first"),
        ({"keep_first": 1.0}, "keep_first"),
        ({"keep_first": True}, "keep_first"),
        ({"keep_last": None}, "keep_last"),
        ({"mask_char": ""}, "mask_char"),
        ({"mask_char": "**"}, "mask_char"),
        ({"mask_char": " "}, "mask_char"),
        ({"mask_char": "\n"}, "mask_char"),
        ({"mask_char": 42}, "mask_char"),
        ({"keep": 1}, "keep"),
        ({"keep_first": 1, "show": "all"}, "show"),
    ],
)
def test_mask_rejects_bad_params(params: dict[str, Any], param: str) -> None:
    op = get_operator("mask")
    with pytest.raises(MaskingError) as exc:
        op.check_params(params)
    assert exc.value.param == param
    assert param in str(exc.value)
    # A direct apply validates too, so skipping check_params cannot bypass it.
    with pytest.raises(MaskingError):
        op.apply("张三", params, CTX)


def test_mask_rejects_params_that_are_not_a_mapping() -> None:
    with pytest.raises(MaskingError, match="mapping"):
        get_operator("mask").check_params([("keep_first", 1)])  # type: ignore[arg-type]


mask_params = st.fixed_dictionaries(
    {"keep_first": st.integers(0, 20), "keep_last": st.integers(0, 20)},
    optional={"mask_char": st.sampled_from(["*", "#", "×", "●"])},
)


@PROPERTY
@given(cjk_or_any, mask_params)
def test_mask_preserves_length_and_masks_at_least_half_when_short(
    value: str, params: dict[str, Any]
) -> None:
    out = run("mask", value, **params)
    mask_char = params.get("mask_char", "*")
    length, keep_first, keep_last = len(value), params["keep_first"], params["keep_last"]
    assert len(out) == length
    if keep_first + keep_last < length:
        shapes = {(keep_first, keep_last)}
    else:  # too short: some split of at most half the characters is kept
        shapes = {(f, k) for f in range(keep_first + 1) for k in range(keep_last + 1)}
        shapes = {(f, k) for f, k in shapes if f + k <= length // 2}
    assert any(
        out == value[:f] + mask_char * (length - f - k) + value[length - k :] for f, k in shapes
    )


@pytest.mark.requirement("R7")
@PROPERTY
@given(cjk_or_any, mask_params)
def test_mask_never_returns_the_raw_value(value: str, params: dict[str, Any]) -> None:
    mask_char = params.get("mask_char", "*")
    assume(mask_char not in value)
    assert run("mask", value, **params) != value


@PROPERTY
@given(cjk_or_any, mask_params, st.data())
def test_mask_output_depends_only_on_length_and_kept_characters(
    value: str, params: dict[str, Any], data: st.DataObject
) -> None:
    """Over arbitrary text, including the mask character itself.

    This is the real privacy property: whatever the masked characters were,
    the caller sees the same output, so nothing about them leaks.
    """
    mask_char = params.get("mask_char", "*")
    out = run("mask", value, **params)
    # Positions that certainly were masked; a raw mask_char is left alone, since
    # it may sit in a kept position.
    hidden = [i for i, c in enumerate(out) if c == mask_char != value[i]]
    other = list(value)
    for i in hidden:
        other[i] = data.draw(st.characters(exclude_characters=mask_char))
    assert run("mask", "".join(other), **params) == out


# --- pseudonym -----------------------------------------------------------------


def test_pseudonym_known_answer() -> None:
    # Pinned so that a change to the construction, which would silently break
    # every caller's stored pseudonyms, fails here first.
    assert run("pseudonym", "51010219850101123X") == "ps_qwuasmjd4vaggd4sbgbz"
    assert (
        run("pseudonym", "51010219850101123X", scope="social_assistance.recipient")
        == "ps_panecfhbix6t4fxssueq"
    )


def test_pseudonym_framing_keeps_caller_and_value_apart() -> None:
    a = run("pseudonym", "c", MaskingContext("ab", KEY, TODAY))
    b = run("pseudonym", "bc", MaskingContext("a", KEY, TODAY))
    assert a != b


@pytest.mark.parametrize(
    ("params", "param"),
    [({"scope": 1}, "scope"), ({"scope": None}, "scope"), ({"salt": "x"}, "salt")],
)
def test_pseudonym_rejects_bad_params(params: dict[str, Any], param: str) -> None:
    with pytest.raises(MaskingError) as exc:
        get_operator("pseudonym").check_params(params)
    assert exc.value.param == param


pseudonym_values = st.one_of(id_numbers(), st.text(cjk, min_size=1, max_size=6), any_text)


@PROPERTY
@given(pseudonym_values, st.text(min_size=1, max_size=20), st.text(max_size=20))
def test_pseudonym_is_deterministic_and_well_formed(value: str, caller: str, scope: str) -> None:
    ctx = MaskingContext(caller, KEY, TODAY)
    out = run("pseudonym", value, ctx, scope=scope)
    assert PSEUDONYM.fullmatch(out)
    assert out == run("pseudonym", value, MaskingContext(caller, KEY, TODAY), scope=scope)
    assert out != value


@PROPERTY
@given(pseudonym_values, st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_pseudonym_differs_across_callers(value: str, caller: str, other: str) -> None:
    assume(caller != other)
    assert run("pseudonym", value, MaskingContext(caller, KEY, TODAY)) != run(
        "pseudonym", value, MaskingContext(other, KEY, TODAY)
    )


@PROPERTY
@given(pseudonym_values, st.binary(min_size=32, max_size=32))
def test_pseudonym_differs_across_keys(value: str, key: bytes) -> None:
    assume(key != KEY)
    assert run("pseudonym", value) != run(
        "pseudonym", value, MaskingContext(CTX.caller_id, key, TODAY)
    )


@PROPERTY
@given(pseudonym_values, st.text(max_size=20), st.text(max_size=20))
def test_pseudonym_differs_across_scopes(value: str, scope: str, other: str) -> None:
    assume(scope != other)
    assert run("pseudonym", value, scope=scope) != run("pseudonym", value, scope=other)


@pytest.mark.requirement("R7")
@PROPERTY
@given(st.one_of(id_numbers(), st.text(cjk, min_size=1, max_size=6), st.text(min_size=8)))
def test_pseudonym_does_not_contain_the_raw_value(value: str) -> None:
    # Short arbitrary strings ("a", "ps") may occur in any output by chance;
    # ID numbers, names and anything of 8+ characters must not.
    out = run("pseudonym", value)
    assert value not in out
    assert value.lower() not in out


@PROPERTY
@given(id_numbers(), id_numbers())
def test_pseudonym_separates_distinct_id_numbers(a: str, b: str) -> None:
    assume(a != b)
    assert run("pseudonym", a) != run("pseudonym", b)


def test_pseudonym_is_not_an_unkeyed_hash() -> None:
    import hashlib

    value = "51010219850101123X"
    out = run("pseudonym", value)
    for algo in ("sha256", "sha1", "md5", "sm3"):
        if algo not in hashlib.algorithms_available:
            continue
        digest = hashlib.new(algo, value.encode()).hexdigest()
        assert out[3:] not in digest
    assert out != run("pseudonym", value, MaskingContext(CTX.caller_id, OTHER_KEY, TODAY))


# --- generalize: params --------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "kind"),
        ({"level": "year"}, "kind"),
        ({"kind": "gps", "level": "city"}, "kind"),
        ({"kind": 3, "level": "city"}, "kind"),
        ({"kind": "birth_date"}, "level"),
        ({"kind": "birth_date", "level": "month"}, "level"),
        ({"kind": "birth_date", "level": "city"}, "level"),
        ({"kind": "region_code", "level": "district"}, "level"),
        ({"kind": "address", "level": "county"}, "level"),
        ({"kind": "address", "level": "street"}, "level"),
        ({"kind": "address", "level": None}, "level"),
        ({"kind": "birth_date", "level": "age_band", "band": 0}, "band"),
        ({"kind": "birth_date", "level": "age_band", "band": -5}, "band"),
        ({"kind": "birth_date", "level": "age_band", "band": "10"}, "band"),
        ({"kind": "birth_date", "level": "age_band", "band": True}, "band"),
        ({"kind": "birth_date", "level": "year", "band": 10}, "band"),
        ({"kind": "region_code", "level": "city", "band": 10}, "band"),
        ({"kind": "address", "level": "city", "keep_first": 1}, "keep_first"),
    ],
)
def test_generalize_rejects_bad_params(params: dict[str, Any], param: str) -> None:
    op = get_operator("generalize")
    with pytest.raises(MaskingError) as exc:
        op.check_params(params)
    assert exc.value.param == param
    assert exc.value.operator == "generalize"
    with pytest.raises(MaskingError):
        op.apply("1985-06-01", params, CTX)


# --- generalize: birth_date ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level", "band", "expected"),
    [
        ("1985-06-01", "year", None, "1985"),
        ("2000-02-29", "year", None, "2000"),
        ("1985-06-01", "age_band", None, "40-49"),  # 40 on 2026-05-01
        ("1986-05-01", "age_band", None, "40-49"),  # 40th birthday today
        ("1986-05-02", "age_band", None, "30-39"),  # 40th birthday tomorrow
        ("1986-05-02", "age_band", 5, "35-39"),
        ("2008-05-01", "age_band", 18, "18-35"),  # an 18-year-old, in 18-year bands
        ("2008-05-02", "age_band", 18, "0-17"),
        ("2026-05-01", "age_band", None, "0-9"),
        ("1930-01-01", "age_band", 1, "96-96"),
        ("2008-02-29", "age_band", 1, "18-18"),
    ],
)
def test_generalize_birth_date(value: str, level: str, band: int | None, expected: str) -> None:
    params: dict[str, Any] = {"kind": "birth_date", "level": level}
    if band is not None:
        params["band"] = band
    assert run("generalize", value, **params) == expected


@pytest.mark.parametrize(
    "value",
    ["1985/06/01", "19850601", "1985-6-1", "1985-02-30", "1985-13-01", "１９８５-０６-０１",
     "1985-06-01T00:00", "abc", "1985"],
)  # fmt: skip
@pytest.mark.parametrize("level", ["year", "age_band"])
def test_generalize_birth_date_fails_closed(value: str, level: str) -> None:
    assert run("generalize", value, kind="birth_date", level=level) == ""


def test_generalize_birth_date_in_the_future_has_no_age_band() -> None:
    assert run("generalize", "2026-05-02", kind="birth_date", level="age_band") == ""


@pytest.mark.requirement("R7")
@PROPERTY
@given(
    st.one_of(st.dates().map(datetime.date.isoformat), any_text),
    st.sampled_from(["year", "age_band"]),
    st.integers(1, 30),
)
def test_generalize_birth_date_never_returns_the_raw_value(
    value: str, level: str, band: int
) -> None:
    params: dict[str, Any] = {"kind": "birth_date", "level": level}
    if level == "age_band":
        params["band"] = band
    out = run("generalize", value, **params)
    assert out != value
    assert re.fullmatch(r"|[0-9]{4}|[0-9]+-[0-9]+", out)


# --- generalize: region_code ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level", "expected"),
    [
        ("513201", "province", "510000"),
        ("513201", "city", "513200"),
        ("513201", "county", "513201"),
        ("110105", "city", "110100"),  # a municipality's district
        ("110105", "province", "110000"),
        ("429004", "city", "429000"),  # a county-level city directly under the province
        (" 513201 ", "city", "513200"),
    ],
)
def test_generalize_region_code(value: str, level: str, expected: str) -> None:
    assert run("generalize", value, kind="region_code", level=level) == expected


@pytest.mark.parametrize(
    "value", ["51320", "5132011", "51320X", "993201", "000000", "５１３２０１"]
)
@pytest.mark.parametrize("level", ["province", "city", "county"])
def test_generalize_region_code_fails_closed(value: str, level: str) -> None:
    assert run("generalize", value, kind="region_code", level=level) == ""


@pytest.mark.requirement("R7")
@PROPERTY
@given(
    st.sampled_from(["51", "11", "42", "65", "15"]),
    st.integers(0, 99),
    st.integers(1, 99),
    st.sampled_from(["province", "city"]),
)
def test_generalize_region_code_hides_the_county(
    prov: str, city: int, county: int, level: str
) -> None:
    code = f"{prov}{city:02d}{county:02d}"
    out = run("generalize", code, kind="region_code", level=level)
    assert out != code
    assert out.endswith("00")
    assert code.startswith(out.rstrip("0")[:2])


@PROPERTY
@given(any_text, st.sampled_from(["province", "city", "county"]))
def test_generalize_region_code_never_returns_unparseable_input(value: str, level: str) -> None:
    assume(not re.fullmatch(r"\s*[0-9]{6}\s*", value))
    assert run("generalize", value, kind="region_code", level=level) == ""


# --- generalize: address -------------------------------------------------------

ADDRESSES = [
    # (address, province, city, district)
    ("四川省阿坝藏族羌族自治州马尔康市达萨街12号",
     "四川省", "四川省阿坝藏族羌族自治州", "四川省阿坝藏族羌族自治州马尔康市"),
    ("四川省阿坝藏族羌族自治州汶川县威州镇1号",
     "四川省", "四川省阿坝藏族羌族自治州", "四川省阿坝藏族羌族自治州汶川县"),
    ("北京市朝阳区建国路88号", "北京市", "北京市", "北京市朝阳区"),
    ("上海市浦东新区世纪大道100号", "上海市", "上海市", "上海市浦东新区"),
    ("北京市市辖区朝阳区建国路88号", "北京市", "北京市市辖区", "北京市市辖区朝阳区"),
    ("重庆市城口县葛城街道5号", "重庆市", "重庆市", "重庆市城口县"),
    ("内蒙古自治区锡林郭勒盟锡林浩特市额尔敦路3号",
     "内蒙古自治区", "内蒙古自治区锡林郭勒盟", "内蒙古自治区锡林郭勒盟锡林浩特市"),
    ("内蒙古自治区呼伦贝尔市鄂温克族自治旗巴彦托海镇",
     "内蒙古自治区", "内蒙古自治区呼伦贝尔市", "内蒙古自治区呼伦贝尔市鄂温克族自治旗"),
    ("西藏自治区阿里地区噶尔县狮泉河镇",
     "西藏自治区", "西藏自治区阿里地区", "西藏自治区阿里地区噶尔县"),
    ("广西壮族自治区南宁市青秀区民族大道1号",
     "广西壮族自治区", "广西壮族自治区南宁市", "广西壮族自治区南宁市青秀区"),
    ("四川省成都市简阳市射洪坝街道", "四川省", "四川省成都市", "四川省成都市简阳市"),
    ("湖北省仙桃市沔阳大道1号", "湖北省", "湖北省", "湖北省仙桃市"),  # no city tier
    ("山东省济南市市中区经七路", "山东省", "山东省济南市", "山东省济南市市中区"),
    ("贵州省黔东南苗族侗族自治州凯里市北京东路", "贵州省",
     "贵州省黔东南苗族侗族自治州", "贵州省黔东南苗族侗族自治州凯里市"),
    ("四川省成都市人民南路四段1号", "四川省", "四川省成都市", "四川省成都市"),  # no district
    ("四川成都市武侯区人民南路", "四川", "四川成都市", "四川成都市武侯区"),  # short name
    ("吉林市船营区北京路", "", "吉林市", "吉林市船营区"),  # 吉林 here is the city
    ("  四川省 成都市 武侯区 人民南路", "四川省", "四川省 成都市", "四川省 成都市 武侯区"),
]  # fmt: skip


@pytest.mark.parametrize(("address", "province", "city", "district"), ADDRESSES)
def test_generalize_address(address: str, province: str, city: str, district: str) -> None:
    for level, expected in (("province", province), ("city", city), ("district", district)):
        assert run("generalize", address, kind="address", level=level) == expected, level


@pytest.mark.parametrize(
    "value", ["人民南路四段1号", "朝阳区建国路88号", "北京大学", "四川大学望江校区", "12号", "x"]
)
@pytest.mark.parametrize("level", ["province", "city", "district"])
def test_generalize_address_fails_closed(value: str, level: str) -> None:
    assert run("generalize", value, kind="address", level=level) == ""


@pytest.mark.requirement("R7")
@PROPERTY
@given(
    st.sampled_from(ADDRESSES),
    st.text(st.characters(exclude_categories=("Z",)), min_size=1, max_size=10),
    st.integers(1, 999),
    st.sampled_from(["province", "city", "district"]),
)
def test_generalize_address_never_returns_the_street(
    entry: tuple[str, str, str, str], street: str, number: int, level: str
) -> None:
    _, province, city, district = entry
    expected = {"province": province, "city": city, "district": district}[level]
    address = f"{district}{street}路{number}号"
    out = run("generalize", address, kind="address", level=level)
    assert out != address
    assert f"{number}号" not in out
    # The street may lengthen the parse (if it starts with a division name), never shorten it.
    assert out.startswith(expected)
    assert address.strip().startswith(out)


@PROPERTY
@given(
    st.one_of(any_text, st.text(cjk, min_size=1, max_size=30)),
    st.sampled_from(["province", "city", "district"]),
)
def test_generalize_address_is_a_prefix_and_idempotent(value: str, level: str) -> None:
    out = run("generalize", value, kind="address", level=level)
    assert value.strip().startswith(out)
    assert run("generalize", out, kind="address", level=level) == out


@PROPERTY
@given(st.data())
def test_generalize_address_over_the_whole_gazetteer(data: st.DataObject) -> None:
    g = gazetteer()
    prov = data.draw(st.sampled_from(sorted(set(g.province_names.values()) - g.municipalities)))
    province = data.draw(
        st.sampled_from(sorted(n for n, p in g.province_names.items() if p == prov))
    )
    cities = g.prefectures[prov]
    assume(cities)
    city = data.draw(st.sampled_from(sorted(cities)))
    counties = sorted(set().union(*(g.counties_under[p] for p in cities[city])))
    assume(counties)
    county = data.draw(st.sampled_from(counties))
    address = f"{province}{city}{county}幸福路7号"
    out = {
        level: run("generalize", address, kind="address", level=level)
        for level in ("province", "city", "district")
    }
    assert out == {
        "province": province,
        "city": province + city,
        "district": province + city + county,
    }
