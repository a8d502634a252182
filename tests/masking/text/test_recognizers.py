"""Chinese recognizers inside Chinese text: one table of (text, expected spans) per recognizer,
harmless look-alikes included, and properties of the number validators."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric, uscc

from masking.text.analyzer import RECOGNIZERS, text_analyzer
from masking.text.base import ChineseRecognizer
from masking.text.entities import DEFAULT_TREATMENTS, ENTITY_TYPES, TITLES
from masking.text.registry import RECOGNIZERS as REGISTERED

# CJK text without digits or ASCII letters: what surrounds numbers in remarks.
CJK = st.text(
    alphabet=st.sampled_from(
        "的了是在有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
    ),
    max_size=12,
)


def found(text: str) -> list[tuple[str, str]]:
    return [(e.type, text[e.start : e.end]) for e in text_analyzer().analyze(text)]


def of_type(entity: str, text: str) -> list[str]:
    """What the analyzer masks as `entity` in `text` (overlaps already resolved)."""
    return [v for t, v in found(text) if t == entity]


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["513221", "110105", "440305", "510104", "320102", "652328"]))
    born = date(1930, 1, 1) + timedelta(days=draw(st.integers(0, 365 * 90)))
    body = f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return body + ric.calc_check_digit(body + "0")


@settings(max_examples=60, deadline=None)
@given(before=CJK, number=id_numbers(), after=CJK)
def test_a_valid_id_number_is_found_between_chinese_characters(
    before: str, number: str, after: str
) -> None:
    text = before + number + after
    assert ("ID_NUMBER", number) in found(text)
    # Full-width digits are the same number.
    wide = number.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    assert ("ID_NUMBER", wide) in found(before + wide + after)


@settings(max_examples=60, deadline=None)
@given(before=CJK, number=id_numbers(), after=CJK, wrong=st.sampled_from("0123456789X"))
def test_a_wrong_check_digit_is_still_an_id_number_with_a_lower_score(
    before: str, number: str, after: str, wrong: str
) -> None:
    bad = number[:-1] + wrong
    if bad == number:
        return
    text = before + "身份证号" + bad + after
    hits = [e for e in text_analyzer().analyze(text) if e.type == "ID_NUMBER"]
    assert [text[e.start : e.end] for e in hits] == [bad]
    assert hits[0].score < 1.0
    good = [
        e
        for e in text_analyzer().analyze(before + "身份证号" + number + after)
        if e.type == "ID_NUMBER"
    ]
    assert good[0].score == 1.0


@settings(max_examples=40, deadline=None)
@given(
    before=CJK,
    after=CJK,
    digits=st.text(alphabet="0123456789", min_size=13, max_size=16),
    prefix=st.sampled_from(["622202", "621700", "436742"]),
)
def test_bank_cards_by_luhn(before: str, after: str, digits: str, prefix: str) -> None:
    body = (prefix + digits)[:18]
    card = body + luhn.calc_check_digit(body)
    text = before + "银行卡号" + card + after
    assert ("BANK_CARD", card) in found(text)
    # A mistyped card number next to a card word still names an account: masked whole.
    wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert ("BANK_CARD", wrong) in found(before + "银行卡号" + wrong + after)


# -- the registry --------------------------------------------------------------


def test_entity_list_titles_treatments_and_analyzer_come_from_the_registry() -> None:
    assert tuple(cls.entity for cls in REGISTERED) == ENTITY_TYPES
    assert set(TITLES) == set(DEFAULT_TREATMENTS) == set(ENTITY_TYPES)
    assert TITLES["QQ_NUMBER"] == "QQ号" and TITLES["WECHAT_ID"] == "微信号"
    assert set(RECOGNIZERS) == set(ENTITY_TYPES)
    engine = text_analyzer().engine
    assert {r.name for r in engine.get_recognizers("zh")} == {c.__name__ for c in REGISTERED}


@pytest.mark.parametrize("cls", REGISTERED, ids=lambda c: c.__name__)
def test_every_recognizer_declares_its_scores_as_named_data(cls: type) -> None:
    assert cls.title and cls.entity.isupper()
    for name, level in cls.scores.items():
        assert 0.5 <= level <= 1.0, (name, level)  # below min_score a level is dead data
    for pattern in cls.patterns:
        # validate() picks a named level for every pattern; the base one takes the pattern's name.
        assert pattern.name in cls.scores or cls.validate is not ChineseRecognizer.validate


# -- one table per recognizer: (text, what it masks), harmless values included --

ID_NUMBER_TABLE = [
    ("身份证号513221198604120890。", ["513221198604120890"]),
    ("证件号11010519800229003x（小写）", ["11010519800229003x"]),
    ("身份证号码513221198604120891与系统不符", ["513221198604120891"]),  # wrong check digit
    ("核对44030519900101456X，末位有误", ["44030519900101456X"]),
    ("核对5132 2119 8604 1208 90", ["5132 2119 8604 1208 90"]),
    ("核对 5132-2119-8604-1208-90", ["5132-2119-8604-1208-90"]),
    ("核对513221 19860412 0890", ["513221 19860412 0890"]),
    ("核对513221.19860412.0890", ["513221.19860412.0890"]),
    ("证件号 652 328 1982 1130 7726。", ["652 328 1982 1130 7726"]),
    ("核对５１３２２１ １９８６０４１２ ０８９０", ["５１３２２１ １９８６０４１２ ０８９０"]),
    ("身份证号５１３２２１１９８６０４１２０８９０", ["５１３２２１１９８６０４１２０８９０"]),
    ("身份证号码5132211986\n04120890，请核实", ["5132211986\n04120890"]),
    ("身份证号：513221 19860412\r\n0890", ["513221 19860412\r\n0890"]),
    ("身份证号513221198604120890 2023年换证", ["513221198604120890"]),  # not the year after it
    ("旧身份证号510103800101123，已换领新证", ["510103800101123"]),
    ("身份证号码51322119860412089与系统不符", ["51322119860412089"]),  # a digit left out
    ("身份证号5132211986041208900", ["5132211986041208900"]),  # one typed twice
    ("编号51322119860412089", []),  # 17 digits without an ID word
    # Harmless: impossible county or date, order and case numbers, amounts, dates.
    ("编号519999198604120890的材料已退回", []),
    ("号码513221198613450890格式有误", []),
    ("身份证号码513221198602300893无效", []),
    ("990101200001011234无法识别", []),
    ("订单号513221198604120891已发货", []),  # wrong check digit next to an order word
    ("流水号513221198001011230099", []),
    ("编号 5132 2119 8604 1208 91", []),
    ("案号（2023）川3221民初1234号", []),
    ("金额1,234,567.89元，日期2023-11-20 14:30", []),
]

PHONE_TABLE = [
    ("联系电话13800001234。", ["13800001234"]),
    ("手机+86 138 0000 1234", ["+86 138 0000 1234"]),
    ("手机(+86)13800138000", ["(+86)13800138000"]),
    ("Tel: 0086 13800138000", ["0086 13800138000"]),
    ("回电+86.138.0013.8000", ["+86.138.0013.8000"]),
    ("电话138-00138000。", ["138-00138000"]),
    ("手机：1380-013-8000", ["1380-013-8000"]),
    ("回电138.0013.8000", ["138.0013.8000"]),
    ("手机１３８－００１３－８０００", ["１３８－００１３－８０００"]),
    ("联系电话138 0013\n8000，地址不详", ["138 0013\n8000"]),
    ("座机028-87654321转123", ["028-87654321转123"]),
    ("联系电话0837-6221234", ["0837-6221234"]),
    ("13800138000 15900001111", ["13800138000", "15900001111"]),  # two numbers, not one
    # Harmless.
    ("涉案金额人民币13800138000.00元", []),
    ("请拨打12345政务服务便民热线或110报警", []),
    ("订单号2023112012345678已发货", []),
    ("受理时间 2023 11 20", []),
]

BANK_CARD_TABLE = [
    ("银行卡号6217003810012345677。", ["6217003810012345677"]),
    ("收款账户6222 0212 3456 7890 128，", ["6222 0212 3456 7890 128"]),
    ("卡号：6217-0038-1001-2345-677", ["6217-0038-1001-2345-677"]),
    ("银行卡号62170038100\n12345677，请核对", ["62170038100\n12345677"]),
    ("银行卡号６２１７００３８１００１２３４５６７７", ["６２１７００３８１００１２３４５６７７"]),
    ("发放至6228480012345678903（农行）", ["6228480012345678903"]),
    # A wrong Luhn digit next to a card word is a mistyped card, masked whole (not a
    # Luhn-valid run inside it); without a card word it is no card.
    ("银行卡号6217003810012345678", ["6217003810012345678"]),
    ("银行卡 6222 0211 0203 4567 890 转账失败", ["6222 0211 0203 4567 890"]),
    ("编号6217003810012345678", []),
    # Harmless: order numbers, an ID-shaped number.
    ("订单编号 6222 0212 3456 7890，支付成功", []),
    ("交易流水号：6228480012345678903", []),
    ("商品编码6901234567892，条形码6921168509256", []),
]

USCC_TABLE = [
    ("统一社会信用代码91513221MA6CB1234L。", ["91513221MA6CB1234L"]),
    ("事业单位12513221000123456H已注销", ["12513221000123456H"]),
    ("统一社会信用代码：9151 0100 MA6C 9K3P 86", ["9151 0100 MA6C 9K3P 86"]),
    ("信用代码91110105 MA01ABCDEB。", ["91110105 MA01ABCDEB"]),
    ("纳税人识别号93-513221-MA62T0X1Y-9", ["93-513221-MA62T0X1Y-9"]),
    (
        "统一社会信用代码９１５１３２２１ＭＡ６ＣＢ１２３４Ｌ",
        ["９１５１３２２１ＭＡ６ＣＢ１２３４Ｌ"],
    ),
    # Harmless: a wrong check character.
    ("统一社会信用代码91510100MA6CB1234Z校验位不符", []),
]

QQ_TABLE = [
    ("投诉人QQ：12345678，", ["12345678"]),
    ("QQ号987654321已加好友", ["987654321"]),
    ("联系qq 3141592653", ["3141592653"]),
    ("QQ号码为10001。", ["10001"]),
    ("ＱＱ：１２３４５６７８", ["１２３４５６７８"]),
    ("QQ/微信：12345678", ["12345678"]),
    ("微信/QQ：12345678", ["12345678"]),
    # Harmless: no label, a QQ group, a QQ mailbox (the e-mail recognizer's).
    ("编号12345678", []),
    ("QQ群123456789的公告", []),
    ("邮箱12345678@qq.com", []),
]

WECHAT_TABLE = [
    ("微信号：wxid_abc123，", ["wxid_abc123"]),
    ("加微信zhang-san_88联系", ["zhang-san_88"]),
    ("微信 Li_Na2023 发来照片", ["Li_Na2023"]),
    ("WeChat: wang_wu_1990", ["wang_wu_1990"]),
    ("微信ID：wxid_q1w2e3r4t5y6", ["wxid_q1w2e3r4t5y6"]),
    # Harmless: no label, too short, not starting with a letter, a public account.
    ("wxid_abc123", []),
    ("微信：abc", []),
    ("微信公众号“汶川发布”", []),
    ("微信支付12.50元", []),
]

OTHER_TABLE = [
    ("EMAIL_ADDRESS", "邮箱zhang.san@qq.com。", ["zhang.san@qq.com"]),
    ("VEHICLE_PLATE", "车牌川A·12345违停", ["川A·12345"]),
    ("VEHICLE_PLATE", "新能源车川AD12345", ["川AD12345"]),
    ("PASSPORT", "护照E12345678", ["E12345678"]),
    ("PASSPORT", "往来港澳通行证C12345678已过期", ["C12345678"]),
    ("PASSPORT", "订单号E12345678", []),
    ("ADDRESS", "家住威州镇羌锋村2组8号。", ["威州镇羌锋村2组8号"]),
    (
        "ADDRESS",
        "迁往四川省成都市武侯区人民南路4段12号3栋2单元501室。",
        ["四川省成都市武侯区人民南路4段12号3栋2单元501室"],
    ),
    ("ADDRESS", "前往成都市出差，汶川县人民政府发布公告。", []),
]


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(("text", "expected"), ID_NUMBER_TABLE)
def test_id_numbers(text: str, expected: list[str]) -> None:
    assert of_type("ID_NUMBER", text) == expected


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(("text", "expected"), PHONE_TABLE)
def test_phone_numbers(text: str, expected: list[str]) -> None:
    assert of_type("PHONE_NUMBER", text) == expected


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(("text", "expected"), BANK_CARD_TABLE)
def test_bank_cards(text: str, expected: list[str]) -> None:
    assert of_type("BANK_CARD", text) == expected


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(("text", "expected"), USCC_TABLE)
def test_usccs(text: str, expected: list[str]) -> None:
    assert of_type("USCC", text) == expected


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(("text", "expected"), QQ_TABLE)
def test_qq_numbers(text: str, expected: list[str]) -> None:
    assert of_type("QQ_NUMBER", text) == expected


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(("text", "expected"), WECHAT_TABLE)
def test_wechat_ids(text: str, expected: list[str]) -> None:
    assert of_type("WECHAT_ID", text) == expected


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(("entity", "text", "expected"), OTHER_TABLE)
def test_other_identifiers_and_addresses(entity: str, text: str, expected: list[str]) -> None:
    assert of_type(entity, text) == expected


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(
    "text",
    [
        "订单号2023112012345678已发货，金额1288.00元。",
        "发票号码04400190021112345678，开票日期2023年5月6日。",
        "张家口市和马鞍山市是地级市，黄山风景区游客众多。",
        "王府井大街、白马寺、石家庄、周口店遗址。",
        "截至2023年12月31日，累计发放救助金12.5万元。",
        "相关人员信息与登记不符。",
        "据统计，全年受理投诉1234件。",
        "版本 1.2.3 于2024.01.01发布",
        "（2024）京0105刑初1008号判决已生效，罚没款合计 62,220,212.34 元。",
    ],
)
def test_harmless_text_is_left_alone(text: str) -> None:
    assert found(text) == []


def test_an_all_digit_uscc_shaped_like_an_id_number_needs_its_word() -> None:
    body = "91513221MA6CB1234"
    code = body + uscc.calc_check_digit(body)
    assert ("USCC", code) in found(f"企业{code}被列入名录")


# -- names (PERSON is being reworked elsewhere: these pin only what it does today) --
PERSON_TABLE = [
    ("当事人张三于2023年", ["张三"]),
    ("法定代表人：欧阳娜娜，", ["欧阳娜娜"]),
    ("李四、王五和赵六到场", ["李四", "王五", "赵六"]),
    ("为陈凯办理户籍迁入", ["陈凯"]),
    ("替欧阳建平办理迁入", ["欧阳建平"]),
    ("为王来福办理", ["王来福"]),
    ("为农户办理补贴", []),
    ("协助公安机关调查", []),
    ("为张家口市办理", []),
    ("代办户籍", []),
]


@pytest.mark.parametrize(("text", "expected"), PERSON_TABLE)
def test_person_names(text: str, expected: list[str]) -> None:
    assert of_type("PERSON", text) == expected


@st.composite
def grouped(draw: st.DrawFn, value: str) -> str:
    """`value` cut into groups of 2-8 characters joined by what people type between them."""
    sep = st.sampled_from([" ", "  ", "-", " - ", ".", "\n", " \n", "\r\n", "\u3000", "－"])
    out, at = [], 0
    while at < len(value):
        size = draw(st.integers(2, 8))
        out.append(value[at : at + size])
        at += size
    return "".join(part + (draw(sep) if i < len(out) - 1 else "") for i, part in enumerate(out))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), before=CJK, after=CJK, number=id_numbers(), wide=st.booleans())
def test_an_id_number_in_any_grouping_is_masked_whole(
    data: st.DataObject, before: str, after: str, number: str, wide: bool
) -> None:
    written = data.draw(grouped(number))
    if wide:
        written = written.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    assert of_type("ID_NUMBER", before + "身份证号" + written + after) == [written]


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    before=CJK,
    after=CJK,
    prefix=st.sampled_from(["138", "159", "176", "186", "199"]),
    rest=st.text(alphabet="0123456789", min_size=8, max_size=8),
)
def test_a_mobile_in_any_grouping_is_masked_whole(
    data: st.DataObject, before: str, after: str, prefix: str, rest: str
) -> None:
    written = data.draw(grouped(prefix + rest))
    assert of_type("PHONE_NUMBER", before + "手机" + written + after) == [written]
