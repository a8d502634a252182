"""Chinese recognizers inside Chinese text: validated numbers, names, addresses, look-alikes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric, uscc

from masking.text.analyzer import RECOGNIZERS, text_analyzer
from masking.text.entities import ENTITY_TYPES

# CJK text without digits or ASCII letters: what surrounds numbers in remarks.
CJK = st.text(
    alphabet=st.sampled_from(
        "的了是在有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
    ),
    max_size=12,
)


def found(text: str) -> list[tuple[str, str]]:
    return [(e.type, text[e.start : e.end]) for e in text_analyzer().analyze(text)]


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["513221", "110105", "440305", "510104", "320102", "652328"]))
    born = date(1930, 1, 1) + timedelta(days=draw(st.integers(0, 365 * 90)))
    body = f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return body + ric.calc_check_digit(body + "0")


def test_registry_covers_every_entity_type() -> None:
    assert set(RECOGNIZERS) == set(ENTITY_TYPES)
    engine = text_analyzer().engine
    assert {r.name for r in engine.get_recognizers("zh")} == {
        c.__name__ for c in RECOGNIZERS.values()
    }


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
def test_a_wrong_check_digit_is_not_an_id_number(
    before: str, number: str, after: str, wrong: str
) -> None:
    bad = number[:-1] + wrong
    if bad == number:
        return
    assert not [t for t, v in found(before + bad + after) if t == "ID_NUMBER"]


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
    wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert not [t for t, _ in found(before + "银行卡号" + wrong + after) if t == "BANK_CARD"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("联系电话13800001234。", [("PHONE_NUMBER", "13800001234")]),
        ("手机+86 138 0000 1234", [("PHONE_NUMBER", "+86 138 0000 1234")]),
        ("座机028-87654321转123", [("PHONE_NUMBER", "028-87654321转123")]),
        ("邮箱zhang.san@qq.com。", [("EMAIL_ADDRESS", "zhang.san@qq.com")]),
        ("车牌川A·12345违停", [("VEHICLE_PLATE", "川A·12345")]),
        ("新能源车川AD12345", [("VEHICLE_PLATE", "川AD12345")]),
        ("护照E12345678", [("PASSPORT", "E12345678")]),
        ("旧身份证号510103800101123", [("ID_NUMBER", "510103800101123")]),
        ("当事人张三于2023年", [("PERSON", "张三")]),
        ("法定代表人：欧阳娜娜，", [("PERSON", "欧阳娜娜")]),
        ("李四、王五和赵六到场", [("PERSON", "李四"), ("PERSON", "王五"), ("PERSON", "赵六")]),
        ("家住威州镇羌锋村2组8号。", [("ADDRESS", "威州镇羌锋村2组8号")]),
        (
            "迁往四川省成都市武侯区人民南路4段12号3栋2单元501室。",
            [("ADDRESS", "四川省成都市武侯区人民南路4段12号3栋2单元501室")],
        ),
    ],
)
def test_entities_in_context(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "订单号2023112012345678已发货，金额1288.00元。",
        "发票号码04400190021112345678，开票日期2023年5月6日。",
        "流水号513221198001011230099。",
        "张家口市和马鞍山市是地级市，黄山风景区游客众多。",
        "王府井大街、白马寺、石家庄、周口店遗址。",
        "前往成都市出差，汶川县人民政府发布公告。",
        "截至2023年12月31日，累计发放救助金12.5万元。",
        "请拨打12345政务服务便民热线。",
        "相关人员信息与登记不符。",
        "据统计，全年受理投诉1234件。",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert found(text) == []


def test_a_uscc_is_found_and_an_all_digit_look_alike_needs_its_word() -> None:
    body = "91513221MA6CB1234"
    code = body + uscc.calc_check_digit(body)
    assert ("USCC", code) in found(f"统一社会信用代码{code}。")
    assert ("USCC", code) in found(f"企业{code}被列入名录")


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        # ID numbers written in groups: 4-4-4-4-2, 6-8-4, with spaces, dashes or dots.
        ("核对5132 2119 8604 1208 90", "ID_NUMBER", "5132 2119 8604 1208 90"),
        ("核对 5132-2119-8604-1208-90", "ID_NUMBER", "5132-2119-8604-1208-90"),
        ("核对513221 19860412 0890", "ID_NUMBER", "513221 19860412 0890"),
        ("核对513221-19860412-0890", "ID_NUMBER", "513221-19860412-0890"),
        ("核对513221.19860412.0890", "ID_NUMBER", "513221.19860412.0890"),
        (
            "核对５１３２２１ １９８６０４１２ ０８９０",
            "ID_NUMBER",
            "５１３２２１ １９８６０４１２ ０８９０",
        ),
        # Mobiles: dots and a bracketed +86 as well as spaces and dashes.
        ("回电138.0013.8000", "PHONE_NUMBER", "138.0013.8000"),
        ("回电(+86)13800138000", "PHONE_NUMBER", "(+86)13800138000"),
        ("回电+86.138.0013.8000", "PHONE_NUMBER", "+86.138.0013.8000"),
        ("回电+86 138 0013 8000", "PHONE_NUMBER", "+86 138 0013 8000"),
        # Someone a service is done for.
        ("为陈凯办理户籍迁入", "PERSON", "陈凯"),
        ("给张伟补办身份证", "PERSON", "张伟"),
        ("协助李娜核实低保材料", "PERSON", "李娜"),
        ("帮王秀英申请救助", "PERSON", "王秀英"),
        ("替欧阳建平办理迁入", "PERSON", "欧阳建平"),
        ("为陈凯（户主）办理", "PERSON", "陈凯"),
        ("为王来福办理", "PERSON", "王来福"),  # 来 is a stop character, the verb ends the name
    ],
)
def test_grouped_numbers_and_beneficiaries_are_found(text: str, entity: str, value: str) -> None:
    assert (entity, value) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "为农户办理补贴",
        "为群众办理",
        "为单位办理",
        "协助公安机关调查",
        "为张家口市办理",
        "为白马寺办理",
        "代办户籍",
        "为民办实事",
        "版本 1.2.3 于2024.01.01发布",
        "编号 5132 2119 8604 1208 91",  # a wrong check digit
    ],
)
def test_look_alikes_of_grouped_numbers_and_beneficiaries_are_not_found(text: str) -> None:
    assert [t for t, _ in found(text) if t in ("PERSON", "ID_NUMBER", "PHONE_NUMBER")] == []
