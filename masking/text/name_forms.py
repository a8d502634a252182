"""Person names where people type them: labelled samples per name form, and recall per form.

A form is where a name stands in a remark: after a contact verb (请联系王小明),
after a role label (联系人：王伟, 法定代表人为李娜), in an agency frame (受张三委托,
由王小明办理), as the subject of a possessive at the start of a sentence
(王小明的联系方式为…), or in a list (张三、李四和王五). `person.negative` lines hold
no name at all: contact verbs and role labels followed by offices, places and
common words (请联系社区居委会, 由王府井街道办理, 马上联系周末值班人员); every
detection there is a false one.

Each sample's `source` names its form. Names are drawn in four shapes, counted
separately: two characters (王伟), three (王小明), a compound surname (欧阳娜娜)
and a minority name with a middle dot (阿依古丽·买买提). Faker zh_CN gives the
surnames and most given names; a few given names hold characters that end a name
elsewhere (来福, 自强, 向东) so that the context, not a stop list, has to end them.

    python -m masking.text.name_forms [--per-form N] [--seed S] [--show-errors]

Exit status 1 when a form or a name shape has recall below 0.98, or precision
on these samples is below the evaluation's 0.95.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from faker.providers.person.zh_CN import Provider as zh_CN_person

from masking.text.corpus_gen import PRECISION_TARGET, Generator, Sample, Span, parse_marked
from masking.text.entity_names import PERSON
from masking.text.name_tables import COMPOUND_SURNAMES

NAMES_HARD_CASES = Path(__file__).with_name("corpus") / "names_hard_cases.txt"
RECALL_TARGET = 0.98  # for every form and every name shape

# Templates per form; slots as in masking.text.evaluation ({PERSON}, {PHONE_NUMBER}…).
FORMS: dict[str, tuple[str, ...]] = {
    "person.contact_verb": (
        "请联系{PERSON}（电话{PHONE_NUMBER}）。",
        "如有疑问，请致电{PERSON}，{PHONE_NUMBER}。",
        "已电话联系{PERSON}，其表示将于{DATE}前补交材料。",
        "材料不全，请联系{PERSON}补正。",
        "请联系 {PERSON} {PHONE_NUMBER}",
        "办理进度可致电{PERSON}咨询。",
        "已于{DATE}致电{PERSON}告知审核结果。",
        "联系{PERSON}：{PHONE_NUMBER}",
        "电话联系{PERSON}未接通，{DATE}再次联系。",
        "请联系{PERSON}核实后再提交。",
        "如需帮助请联系{PERSON}",
        "已电联{PERSON}，确认地址为{ADDRESS}。",
        "请与{PERSON}联系，电话{PHONE_NUMBER}。",
    ),
    "person.role_label": (
        "{ROLE}{PERSON}，电话{PHONE_NUMBER}。",
        "{ROLE}：{PERSON}，联系电话：{PHONE_NUMBER}",
        "{ROLE}:{PERSON}（身份证号{ID_NUMBER}）",
        "{ROLE} {PERSON} 于{DATE}提交申请。",
        "{ROLE}为{PERSON}，身份证号码{ID_NUMBER}。",
        "{ROLE}是{PERSON}。",
        "{ROLE}{PERSON}未到场。",
        "{ROLE}：{PERSON}",
        "本案{ROLE}{PERSON}已签字确认。",
        "{ROLE}{PERSON}（{PHONE_NUMBER}）到窗口办理。",
        "{ROLE}{PERSON}称材料已寄出。",
        "经核实，{ROLE}{PERSON}住{ADDRESS}。",
        "{ROLE}（签字）：{PERSON}",
    ),
    "person.agency": (
        "受{PERSON}委托，代为办理不动产登记。",
        "本人受{PERSON}委托领取证照。",
        "委托{PERSON}代为领取。",
        "委托{PERSON}（身份证号{ID_NUMBER}）办理退税事宜。",
        "由{PERSON}办理。",
        "该业务由{PERSON}经办，业务编号{ORDER}。",
        "此件由{PERSON}负责跟进，{DATE}前办结。",
        "由{PERSON}代为签收。",
        "申请材料由{PERSON}于{DATE}提交。",
        "已委托{PERSON}办理，联系电话{PHONE_NUMBER}。",
    ),
    "person.possessive": (
        "{PERSON}的联系方式为{PHONE_NUMBER}。",
        "{PERSON}的身份证号码为{ID_NUMBER}。",
        "{PERSON}的电话是{PHONE_NUMBER}。",
        "{PERSON}的手机{PHONE_NUMBER}已停机。",
        "{PERSON}的住址为{ADDRESS}。",
        "经核实，{PERSON}的身份证已过期。",
        "{PERSON}的身份证复印件已收。",
        "{PERSON}的手机号码有误，请核对。",
        "{PERSON}的联系电话：{PHONE_NUMBER}",
    ),
    "person.list": (
        "{PERSON}、{PERSON}、{PERSON}三人到场。",
        "申请人{PERSON}、{PERSON}和{PERSON}的材料已收齐。",
        "{PERSON}和{PERSON}系夫妻关系。",
        "当事人{PERSON}及{PERSON}均未到场。",
        "{PERSON}与{PERSON}签订租赁合同。",
        "经办人{PERSON}、{PERSON}",
        "请联系{PERSON}或{PERSON}，电话{PHONE_NUMBER}。",
        "{PERSON}和{PERSON}的联系方式分别为{PHONE_NUMBER}、{PHONE_NUMBER}。",
        "家庭成员：{PERSON}、{PERSON}。",
    ),
    "person.negative": (
        "请联系社区居委会核实。",
        "请致电12345政务服务便民热线。",
        "请联系王府井街道办事处。",
        "由汶川县人民政府办理。",
        "委托张家港市人民医院进行伤残鉴定。",
        "受黄山风景区管委会委托开展调查。",
        "联系人：办公室主任",
        "经办人：窗口工作人员",
        "由高速交警大队处理。",
        "马上联系周末值班人员。",
        "方案已由王府井街道审定。",
        "李子园村委会已盖章，程序合法。",
        "黄金周期间暂停办理，{DATE}恢复。",
        "于{DATE}缴纳罚款{AMOUNT}元，文号{CASE}。",
        "申请人应当提供身份证原件。",
        "由申请人本人办理。",
        "委托代理人须持授权委托书。",
        "当事人的联系方式为空。",
        "电话联系未接通。",
        "监护人应当陪同办理。",
        "法定代表人变更登记已办结。",
        "请联系相关部门。",
        "由公安机关依法处理。",
        "由于材料不全，暂缓办理。",
        "申请人、被申请人均已到场。",
        "张家港市、石家庄市、马鞍山市三地联合检查。",
        "周末及节假日不办公，请向前台咨询。",
        "高速路口设置检查站，案号{CASE}。",
        "由原单位出具证明。",
        "请联系房东确认租赁情况。",
        "官方的联系方式以公告为准。",
        "由区政府负责协调。",
        "经常联系不上当事人。",
        "受理编号{ORDER}，金额{AMOUNT}元。",
        "联系方式：{PHONE_NUMBER}",
        "请致电{PHONE_NUMBER}联系工作人员。",
        "经办人员已核实，{DATE}办结。",
        "委托书原件已收。",
        "由村委会统一组织。",
        "请联系银行柜台办理。",
    ),
}
ROLES = ("联系人", "经办人", "申请人", "当事人", "代办人", "被申请人", "监护人", "法定代表人")

# Given names with a character that ends a name elsewhere (来, 自, 向, 有, 为, 立…).
_HARD_GIVEN = ("来福", "自强", "向东", "有才", "为民", "立新", "可欣", "如意", "其昌", "家豪")
_DOT_NAMES = (
    "阿依古丽·买买提",
    "买买提·艾力",
    "古丽娜尔·吐尔逊",
    "热依拉·阿不都",
    "艾合买提·依明",
    "迪丽娜尔·阿不都拉",
    "阿力木·吐尔洪",
    "帕提古丽·艾买提",
    "库尔班·吐鲁木",
    "阿依努尔·卡德尔",
    "木合塔尔·热合曼",
    "祖丽菲亚·艾则孜",
    "玉苏甫·吾守尔",
    "米热古丽·依沙克",
    "努尔兰·别克",
)
SHAPES = ("two", "three", "compound", "dot")
# Faker's zh_CN given names of one character, for two-character names.
_SINGLE_GIVEN = tuple(n for n in zh_CN_person.first_names if len(n) == 1)


def shape(name: str) -> str:
    """Which of SHAPES a labelled name is."""
    if any(d in name for d in "·•・‧"):
        return "dot"
    if name[:2] in COMPOUND_SURNAMES:
        return "compound"
    return "two" if len(name) == 2 else "three"


class NameFormGenerator(Generator):
    """The evaluation's generator with names drawn by shape, and templates by form."""

    def person(self) -> str:
        r = self.rng.random()
        surname = self.fake.last_name()
        while surname == "和":  # not in the surname table: it joins lists (see name_tables)
            surname = self.fake.last_name()
        singles = _SINGLE_GIVEN
        if r < 0.3:
            return surname + self.rng.choice(singles)
        if r < 0.7:
            if self.rng.random() < 0.15:
                return surname + self.rng.choice(_HARD_GIVEN)
            given = self.fake.first_name()
            return surname + (given if len(given) == 2 else given + self.rng.choice(singles))
        if r < 0.85:
            compound = self.rng.choice(COMPOUND_SURNAMES)
            return compound + self.fake.first_name()
        name = self.rng.choice(_DOT_NAMES)
        return name.replace("·", "•") if self.rng.random() < 0.1 else name

    def form_sample(self, form: str) -> Sample:
        template = self.rng.choice(FORMS[form]).replace("{ROLE}", self.rng.choice(ROLES))
        out: list[str] = []
        spans: list[Span] = []
        at = length = 0
        for m in re.finditer(r"\{([A-Z_]+)\}", template):
            plain = template[at : m.start()]
            text, kind = self.fill(m.group(1))
            out += [plain, text]
            if kind is not None:
                spans.append(Span(kind, length + len(plain), length + len(plain) + len(text)))
            length += len(plain) + len(text)
            at = m.end()
        out.append(template[at:])
        return Sample("".join(out), tuple(spans), form, form)


def names_hard_cases() -> list[Sample]:
    """corpus/names_hard_cases.txt: marked lines under `# form: person.…` headers."""
    samples: list[Sample] = []
    form = "person.hard"
    for line in NAMES_HARD_CASES.read_text(encoding="utf-8").splitlines():
        if line.startswith("# form:"):
            form = line.removeprefix("# form:").strip()
        elif line.strip() and not line.startswith("#"):
            samples.append(parse_marked(line, form, form))
    return samples


def name_samples(per_form: int, seed: int) -> list[Sample]:
    """The hand-written name cases and `per_form` generated samples of every form."""
    gen = NameFormGenerator(seed)
    return names_hard_cases() + [gen.form_sample(f) for f in FORMS for _ in range(per_form)]


def form_recall(
    samples: Iterable[Sample], detect: Callable[[str], list]
) -> tuple[dict[str, list[int]], list[str]]:
    """{form or form/shape: [found, labelled, false detections, found exactly]} for PERSON,
    and the errors. Found: covered by one detection (nothing leaks); exactly: no
    character more either (a detection that runs on masks words that are no name)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    errors: list[str] = []
    for s in samples:
        counts[s.source]  # every form has a row, the negatives too
        found = [e for e in detect(s.text) if e.type == PERSON]
        for g in (g for g in s.spans if g.type == PERSON):
            hit = any(e.start <= g.start and e.end >= g.end for e in found)
            exact = any(e.start == g.start and e.end == g.end for e in found)
            for key in (s.source, f"{s.source}/{shape(s.text[g.start : g.end])}"):
                counts[key][0] += hit
                counts[key][1] += 1
                counts[key][3] += exact
            if not hit:
                errors.append(f"MISS {s.source} {s.text[g.start : g.end]!r} in {s.text}")
            elif not exact:
                errors.append(f"INEXACT {s.source} {s.text[g.start : g.end]!r} in {s.text}")
        for e in found:
            if not any(g.type == PERSON and e.start < g.end and g.start < e.end for g in s.spans):
                counts[s.source][2] += 1
                errors.append(f"FALSE {s.source} {s.text[e.start : e.end]!r} in {s.text}")
    return dict(counts), errors


def form_table(counts: dict[str, list[int]]) -> str:
    rows = [f"{'form':<34}{'labelled':>9}{'found':>7}{'recall':>8}{'exact':>7}{'false':>7}"]
    for key in sorted(counts):
        found, labelled, false, exact = counts[key]
        recall = f"{found / labelled:>8.3f}" if labelled else f"{'-':>8}"
        rows.append(f"{key:<34}{labelled:>9}{found:>7}{recall}{exact:>7}{false:>7}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m masking.text.name_forms", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--per-form", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args(argv)
    from masking.text.analyzer import text_analyzer

    counts, errors = form_recall(name_samples(args.per_form, args.seed), text_analyzer().analyze)
    print(form_table(counts))
    forms = [v for k, v in counts.items() if "/" not in k]
    found, false = sum(v[0] for v in forms), sum(v[2] for v in forms)
    precision = found / (found + false) if found + false else 1.0
    missed = sorted(k for k, v in counts.items() if v[1] and v[0] / v[1] < RECALL_TARGET)
    print(f"PERSON precision on these samples {precision:.3f} (target {PRECISION_TARGET:.2f})")
    if args.show_errors:
        print("\n".join(errors))
    ok = not missed and precision >= PRECISION_TARGET
    print("targets met" if ok else f"TARGETS MISSED {missed}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
