"""Person names where people type them: after contact verbs and role labels, in agency
frames, as a sentence's owner, in lists; and the harmless text around them left alone."""

from __future__ import annotations

import pytest

from masking.text.analyzer import text_analyzer
from masking.text.name_forms import FORMS, form_recall, name_samples, names_hard_cases, shape
from masking.text.names import CnPersonNameRecognizer


def persons(text: str) -> list[str]:
    return [text[e.start : e.end] for e in text_analyzer().analyze(text) if e.type == "PERSON"]


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # after a contact verb
        ("请联系王小明（电话13800001234）", ["王小明"]),
        ("如有疑问请致电王伟。", ["王伟"]),
        ("可电话联系张晓丽核实。", ["张晓丽"]),
        ("材料不全，请联系李娜补正。", ["李娜"]),
        ("请转告李明尽快办理。", ["李明"]),
        ("致电王来福未接通。", ["王来福"]),  # 来 ends names elsewhere; here the context does
        ("委托王伟代为领取。", ["王伟"]),
        ("请与王伟联系。", ["王伟"]),
        ("转交李娜签收。", ["李娜"]),
        # after a role label: directly, with a colon, a space, 为 or 是
        ("联系人王伟，电话13800001234", ["王伟"]),
        ("联系人：王伟", ["王伟"]),
        ("联系人 李娜", ["李娜"]),
        ("联系人为周杰。", ["周杰"]),
        ("经办人是李娜。", ["李娜"]),
        ("代办人是吴帆。", ["吴帆"]),
        ("被申请人赵刚未到场。", ["赵刚"]),
        ("监护人：孙丽，手机13912345678。", ["孙丽"]),
        ("法定代表人为上官婉儿。", ["上官婉儿"]),
        ("法定代表人是张自强。", ["张自强"]),
        ("联系人：王家豪", ["王家豪"]),
        ("经办人陈有才核实无误。", ["陈有才"]),
        ("联系人黄博住天津市朱路469号。", ["黄博"]),
        ("当事人王伟拒不配合。", ["王伟"]),
        ("申请人（签字）：王伟", ["王伟"]),
        ("法定代表人（负责人）：赵刚", ["赵刚"]),
        # agency frames
        ("由王小明办理。", ["王小明"]),
        ("受李四委托办理。", ["李四"]),
        ("本人受欧阳建平委托领取证照。", ["欧阳建平"]),
        ("该业务由张为民经办。", ["张为民"]),
        ("由李娜、王伟共同办理。", ["李娜", "王伟"]),
        # the owner at the start of a sentence
        ("王小明的联系方式为13800001234。", ["王小明"]),
        ("王伟的身份证已过期。", ["王伟"]),
        ("欧阳娜娜的电话为13800001234", ["欧阳娜娜"]),
        ("经核实，李来福的手机已停机。", ["李来福"]),
        # lists, after the first name is found
        ("张三、李四、王小明到场。", ["张三", "李四", "王小明"]),
        ("张三和李四系夫妻。", ["张三", "李四"]),
        ("申请人王伟及李娜均未到场。", ["王伟", "李娜"]),
        ("张三与李四签订协议。", ["张三", "李四"]),
        ("请联系王伟或李娜。", ["王伟", "李娜"]),
        ("杨自强、梁楠三人到场。", ["杨自强", "梁楠"]),
        ("张三、李四两位同志。", ["张三", "李四"]),
        # names with a middle dot
        ("请联系阿依古丽·买买提（电话13800001234）。", ["阿依古丽·买买提"]),
        ("申请人：热依拉·阿不都", ["热依拉·阿不都"]),
        ("由买买提·艾力代为签收。", ["买买提·艾力"]),
        ("本人受迪丽娜尔·阿不都拉委托领取证照。", ["迪丽娜尔·阿不都拉"]),
        ("阿依古丽·买买提的联系方式为13912345678。", ["阿依古丽·买买提"]),
        ("阿依古丽·买买提和阿力木·吐尔洪系夫妻。", ["阿依古丽·买买提", "阿力木·吐尔洪"]),
        ("当事人阿依古丽·买买提、王伟已到场。", ["阿依古丽·买买提", "王伟"]),
    ],
)
def test_names_are_found_with_their_exact_extent(text: str, expected: list[str]) -> None:
    assert persons(text) == expected


@pytest.mark.requirement("R7")
@pytest.mark.parametrize(
    "text",
    [
        "请联系王府井派出所。",
        "马上联系周末值班人员。",
        "经常联系不上当事人。",
        "高速路口设置检查站。",
        "黄金周期间暂停办理。",
        "方案已由王府审定。",
        "李子园村委会已盖章。",
        "汶川县人民政府发布通告。",
        "张家港市人民医院派员参加。",
        "向前一步，程序从简。",
        "由于材料不全，暂缓办理。",
        "由此产生的费用由申请人承担。",
        "由区政府负责协调。",
        "由原单位出具证明。",
        "请联系房东确认租赁情况。",
        "官方的联系方式以公告为准。",
        "申请人应当提供身份证原件。",
        "监护人应当陪同办理。",
        "联系人：办公室主任",
        "联系人是办公室。",
        "法定代表人为其配偶。",
        "请致电周口店遗址管理处。",
        "委托高新区管委会代为管理。",
        "请联系华为客服。",
        "申请人应于三十日内提出。",
        "委托方为成都市某科技公司。",
        "安全、文明、有序。",
        "甘肃、宁夏两省区。",
        "请与相关部门联系。",
        "与房东联系确认。",
        "当事人权利义务告知。",
        "当事人于法定期限内未申请行政复议。",
        "申请人曾多次反映。",
        "由程序自动生成。",
        "中国·成都国际美食节",
        "四川·汶川第三届羌年节",
        "于2024年3月1日缴纳罚款5000元，文号汶市监罚〔2023〕45号。",
    ],
)
def test_harmless_text_stays(text: str) -> None:
    assert persons(text) == []


def test_the_recognizer_keeps_its_interface() -> None:
    recognizer = CnPersonNameRecognizer()
    assert recognizer.entity == "PERSON"
    assert [(s, e) for s, e, _ in recognizer.find("请联系王小明")] == [(3, 6)]


def test_the_hand_written_cases_name_every_form() -> None:
    forms = {s.source for s in names_hard_cases()}
    assert forms == set(FORMS)
    assert {shape(n) for n in ("王伟", "王小明", "欧阳娜娜", "阿依古丽·买买提")} == {
        "two",
        "three",
        "compound",
        "dot",
    }


@pytest.mark.requirement("R7")
def test_every_form_and_shape_meets_its_recall_and_the_negatives_stay_clean() -> None:
    """The issue's targets on a fresh seed: recall >= 0.98 per form and per name shape,
    no detection at all in the harmless lines, precision >= 0.95 on names."""
    counts, errors = form_recall(name_samples(60, seed=11), text_analyzer().analyze)
    low = {k: v for k, v in counts.items() if v[1] and v[0] / v[1] < 0.98}
    assert not low, (low, errors[:20])
    assert counts["person.negative"][2] == 0, errors[:20]
    found = sum(v[0] for k, v in counts.items() if "/" not in k)
    false = sum(v[2] for k, v in counts.items() if "/" not in k)
    assert found / (found + false) >= 0.95, errors[:20]
