"""The labelled evaluation corpus and `make eval-masking`: precision and recall per entity type.

Two parts:
- hand-written hard cases (corpus/hard_cases.txt): look-alike numbers that
  fail their check digit, dates, amounts, order and case numbers, names
  inside place names, next to real entities;
- generated samples: templates written for this corpus, filled with Faker
  zh_CN names, e-mails and street names, numbers made valid with
  python-stdnum, and addresses built from the GB/T 2260 table. A seed makes
  the corpus reproducible.

Scoring: a labelled entity is found when one detected entity of the same
type covers it entirely (a partial hit leaks the rest); a detected entity is
correct when it overlaps a labelled entity of its type. Run:

    python -m masking.text.evaluation [--samples N] [--seed S] [--show-errors]

Exit status 1 when a target is missed: recall >= 0.98 for ID, phone, bank
card and USCC, >= 0.90 for names and addresses, precision >= 0.95 overall.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from masking.text.entities import (
    ADDRESS,
    BANK_CARD,
    EMAIL_ADDRESS,
    ENTITY_TYPES,
    ID_NUMBER,
    PASSPORT,
    PERSON,
    PHONE_NUMBER,
    USCC,
    VEHICLE_PLATE,
)

HARD_CASES = Path(__file__).with_name("corpus") / "hard_cases.txt"
RECALL_TARGETS = {
    ID_NUMBER: 0.98,
    PHONE_NUMBER: 0.98,
    BANK_CARD: 0.98,
    USCC: 0.98,
    PERSON: 0.90,
    ADDRESS: 0.90,
}
PRECISION_TARGET = 0.95
_MARK = re.compile(r"\[\[([A-Z_]+):(.+?)\]\]")


@dataclass(frozen=True)
class Span:
    type: str
    start: int
    end: int


@dataclass(frozen=True)
class Sample:
    text: str
    spans: tuple[Span, ...]
    source: str


def parse_marked(line: str, source: str) -> Sample:
    """'当事人[[PERSON:张三]]…' -> text without marks, and the spans."""
    out: list[str] = []
    spans: list[Span] = []
    at = 0
    length = 0
    for m in _MARK.finditer(line):
        plain = line[at : m.start()]
        out.append(plain)
        length += len(plain)
        spans.append(Span(m.group(1), length, length + len(m.group(2))))
        out.append(m.group(2))
        length += len(m.group(2))
        at = m.end()
    out.append(line[at:])
    return Sample("".join(out), tuple(spans), source)


def hard_cases() -> list[Sample]:
    lines = HARD_CASES.read_text(encoding="utf-8").splitlines()
    return [
        parse_marked(line, "hard") for line in lines if line.strip() and not line.startswith("#")
    ]


# -- generated samples -------------------------------------------------------
# Slots: {PERSON} {ID_NUMBER} ... fill entities; {ORDER} {AMOUNT} {DATE} {BADID}
# {CASE} {PLACE} {NUM} fill look-alikes that must stay unmasked.
TEMPLATES = (
    "当事人{PERSON}（身份证号{ID_NUMBER}）于{DATE}在{ADDRESS}无证经营，罚款{AMOUNT}元。",
    "法定代表人{PERSON}，联系电话{PHONE_NUMBER}，统一社会信用代码{USCC}。",
    "经查，{PERSON}名下银行卡{BANK_CARD}于{DATE}转入{AMOUNT}元，订单号{ORDER}。",
    "申请人{PERSON}，公民身份号码{ID_NUMBER}，现住{ADDRESS}，手机{PHONE_NUMBER}。",
    "{PERSON}于{DATE}驾驶{VEHICLE_PLATE}在{PLACE}附近超速，处罚决定书文号{CASE}。",
    "投诉人{PERSON}反映其邮箱{EMAIL_ADDRESS}被冒用，联系方式{PHONE_NUMBER}。",
    "户主{PERSON}，家庭住址{ADDRESS}，家庭成员{PERSON}、{PERSON}。",
    "出境记录：{PERSON}持护照{PASSPORT}于{DATE}出境。",
    "救助对象{PERSON}（{ID_NUMBER}）月救助金{AMOUNT}元，发放至账户{BANK_CARD}。",
    "请{PERSON}同志于{DATE}前到{PLACE}政务服务中心领取证照，咨询电话{PHONE_NUMBER}。",
    "该户人员{PERSON}身份证号码{ID_NUMBER}，校验失败的号码{BADID}已退回。",
    "{PERSON}、{PERSON}和{PERSON}共同出资设立企业，统一社会信用代码为{USCC}。",
    "来访人{PERSON}称居住在{ADDRESS}，联系电话{PHONE_NUMBER}，邮箱{EMAIL_ADDRESS}。",
    "车主{PERSON}的车辆{VEHICLE_PLATE}于{DATE}年检过期，流水号{ORDER}。",
    "被处罚人{PERSON}，男，{NUM}岁，住{ADDRESS}。",
    "负责人{PERSON}（手机{PHONE_NUMBER}）表示将于{DATE}前整改完毕。",
    "收款人：{PERSON}；开户行：中国农业银行{PLACE}支行；卡号：{BANK_CARD}。",
    "{PERSON}女士反映，其于{DATE}在{PLACE}遗失身份证（{ID_NUMBER}）。",
    "{PERSON}先生的护照号码为{PASSPORT}，电子邮箱{EMAIL_ADDRESS}。",
    "企业{USCC}于{DATE}被列入经营异常名录，联系人{PERSON}，电话{PHONE_NUMBER}。",
    "据{PERSON}陈述，事发地点为{ADDRESS}，涉事车辆{VEHICLE_PLATE}。",
    "经办人{PERSON}于{DATE}受理，业务编号{ORDER}，收费{AMOUNT}元。",
    "{PERSON}（女，身份证号{ID_NUMBER}）系{PERSON}之妻，共同居住于{ADDRESS}。",
    "监护人{PERSON}联系电话{PHONE_NUMBER}，案号{CASE}。",
    "{PLACE}开展专项检查，发现{NUM}家商户未亮照经营，罚没款合计{AMOUNT}元。",
    "{DATE}，{PLACE}召开会议，部署{NUM}项重点工作，发票号码{ORDER}。",
    "编号为{BADID}的申请材料信息有误，请核对后于{DATE}前重新提交。",
    "本年度共受理{NUM}件投诉，办结率{NUM}%，涉及金额{AMOUNT}元。",
)

_GIVEN_CHARS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文德俊浩宇轩涵梓欣怡子晨雨婷思佳博睿嘉琪"
_STREETS = (
    "人民路",
    "解放路",
    "建设路",
    "和平街",
    "文化路",
    "新华街",
    "中山大道",
    "滨江路",
    "桑坪路",
    "团结街",
)
_TOWNS = (
    "威州镇",
    "映秀镇",
    "水磨镇",
    "漩口镇",
    "三江镇",
    "绵虒镇",
    "卧龙镇",
    "耿达镇",
    "龙溪乡",
    "雁门乡",
)
_VILLAGES = ("羌锋村", "桑坪村", "老街村", "高店村", "七盘沟村", "布瓦村", "萝卜寨村", "克枯村")
_PLACES = (
    "张家口市",
    "马鞍山",
    "黄山风景区",
    "王府井",
    "石家庄",
    "高新区",
    "金牛区",
    "何家湾",
    "江油市",
    "李家沱",
    "白马寺",
    "周口店",
    "汶川县",
    "威州镇",
    "成都市",
    "阿坝州",
)
_PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁苏浙赣鄂桂甘晋陕吉闽贵粤青川宁琼"
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


class Generator:
    def __init__(self, seed: int) -> None:
        from faker import Faker

        from masking.gazetteer import gazetteer

        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        gz = gazetteer()
        self.provinces = sorted(gz.province_names.items())
        self.prefectures = gz.prefectures
        self.counties_under = gz.counties_under
        from stdnum import numdb

        self.regions = [
            prov + rest
            for _l, prov, _h, _p, children in numdb.get("cn/loc").prefixes
            for _cl, rest, _ch, props, _g in children
            if props.get("county") and not props["county"].startswith("[")
        ]

    def person(self) -> str:
        if self.rng.random() < 0.7:
            return self.fake.name()
        surname = self.fake.last_name()
        return surname + "".join(
            self.rng.choice(_GIVEN_CHARS) for _ in range(self.rng.choice((1, 2)))
        )

    def id_number(self) -> str:
        from stdnum.cn import ric

        region = self.rng.choice(self.regions)
        born = date(1940, 1, 1) + timedelta(days=self.rng.randrange(365 * 80))
        if self.rng.random() < 0.1:
            return f"{region}{born:%y%m%d}{self.rng.randrange(1000):03d}"
        body = f"{region}{born:%Y%m%d}{self.rng.randrange(1000):03d}"
        number = body + ric.calc_check_digit(body + "0")
        return number.lower() if self.rng.random() < 0.05 else number

    def bad_id(self) -> str:
        good = self.id_number()
        while len(good) != 18:
            good = self.id_number()
        digits = "0123456789X"
        return good[:-1] + self.rng.choice([d for d in digits if d != good[-1].upper()])

    def phone(self) -> str:
        r = self.rng.random()
        prefix = self.rng.choice(
            (
                "130",
                "133",
                "135",
                "136",
                "138",
                "139",
                "147",
                "150",
                "152",
                "158",
                "159",
                "166",
                "173",
                "176",
                "177",
                "180",
                "181",
                "186",
                "187",
                "188",
                "189",
                "191",
                "198",
                "199",
            )
        )
        mobile = prefix + "".join(str(self.rng.randrange(10)) for _ in range(8))
        if r < 0.55:
            return mobile
        if r < 0.65:
            return f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"
        if r < 0.72:
            return f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}"
        if r < 0.78:
            return "+86 " + mobile
        area = self.rng.choice(("010", "021", "028", "0837", "0816", "0755", "023"))
        number = str(self.rng.randrange(2, 10)) + "".join(
            str(self.rng.randrange(10)) for _ in range(7 if len(area) == 3 else 6)
        )
        return f"{area}-{number}" if self.rng.random() < 0.8 else f"（{area}）{number}"

    def bank_card(self) -> str:
        from stdnum import luhn

        length = self.rng.choice((16, 19, 19))
        body = self.rng.choice(
            ("622202", "621700", "622848", "623668", "625965", "436742")
        ) + "".join(str(self.rng.randrange(10)) for _ in range(length - 7))
        card = body + luhn.calc_check_digit(body)
        if self.rng.random() < 0.2:
            return " ".join(card[i : i + 4] for i in range(0, len(card), 4))
        return card

    def uscc(self) -> str:
        from stdnum.cn import uscc

        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        region = self.rng.choice(self.regions)
        body = (
            self.rng.choice(("91", "92", "93", "12", "52"))
            + region
            + "".join(self.rng.choice(alphabet) for _ in range(9))
        )
        return body + uscc.calc_check_digit(body)

    def passport(self) -> str:
        digits = "".join(str(self.rng.randrange(10)) for _ in range(8))
        if self.rng.random() < 0.7:
            return "E" + digits
        return "E" + self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + digits[:7]

    def plate(self) -> str:
        head = self.rng.choice(_PLATE_PROVINCES) + self.rng.choice(_PLATE_LETTERS)
        if self.rng.random() < 0.2:
            tail = self.rng.choice("DF") + "".join(str(self.rng.randrange(10)) for _ in range(5))
        else:
            tail = "".join(self.rng.choice("0123456789" * 3 + _PLATE_LETTERS) for _ in range(5))
            tail = tail[:2] + "".join(str(self.rng.randrange(10)) for _ in range(3))
        return head + ("·" if self.rng.random() < 0.2 else "") + tail

    def address(self) -> str:
        prov_name, prov = self.rng.choice(self.provinces)
        prefs = self.prefectures.get(prov) or {}
        parts = [prov_name] if self.rng.random() < 0.8 else []
        # Names as addresses are written: no 市辖区 / 郊区 placeholder tiers.
        prefs = {c: p for c, p in prefs.items() if len(c) >= 2}
        if prefs:
            city = self.rng.choice(sorted(prefs))
            counties = sorted(
                c
                for c in self.counties_under.get(sorted(prefs[city])[0], ())
                if len(c) >= 2 and c not in ("市辖区", "市区", "郊区", "矿区")
            )
            parts.append(city)
            if counties:
                parts.append(self.rng.choice(counties))
        if not parts:
            parts.append(prov_name)
        r = self.rng.random()
        if r < 0.35:
            detail = f"{self.rng.choice(_TOWNS)}{self.rng.choice(_VILLAGES)}{self.rng.randrange(1, 12)}组{self.rng.randrange(1, 99)}号"
        elif r < 0.7:
            detail = f"{self.rng.choice(_STREETS)}{self.rng.randrange(1, 999)}号{self.rng.randrange(1, 30)}栋{self.rng.randrange(1, 6)}单元{self.rng.randrange(101, 2999)}室"
        else:
            detail = self.fake.street_name() + f"{self.rng.randrange(1, 500)}号"
        return "".join(parts) + detail

    def fill(self, slot: str) -> tuple[str, str | None]:
        """(text, entity type or None for a look-alike)."""
        r = self.rng
        makers = {
            PERSON: self.person,
            ID_NUMBER: self.id_number,
            PHONE_NUMBER: self.phone,
            BANK_CARD: self.bank_card,
            USCC: self.uscc,
            PASSPORT: self.passport,
            EMAIL_ADDRESS: self.fake.email,
            VEHICLE_PLATE: self.plate,
            ADDRESS: self.address,
        }
        if slot in makers:
            return makers[slot](), slot
        filler = {
            "ORDER": lambda: "".join(
                str(r.randrange(10)) for _ in range(r.choice((12, 14, 16, 20)))
            ),
            "AMOUNT": lambda: r.choice(
                (
                    f"{r.randrange(1, 100000)}",
                    f"{r.randrange(1, 100000)}.{r.randrange(100):02d}",
                    f"{r.randrange(1, 999)},{r.randrange(1000):03d}.00",
                )
            ),
            "DATE": lambda: r.choice(
                (
                    f"{r.randrange(2015, 2026)}年{r.randrange(1, 13)}月{r.randrange(1, 29)}日",
                    f"{r.randrange(2015, 2026)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}",
                    f"{r.randrange(2015, 2026)}{r.randrange(1, 13):02d}{r.randrange(1, 29):02d}",
                )
            ),
            "BADID": self.bad_id,
            "CASE": lambda: f"汶市监罚〔{r.randrange(2015, 2026)}〕{r.randrange(1, 300)}号",
            "PLACE": lambda: r.choice(_PLACES),
            "NUM": lambda: str(r.randrange(1, 100)),
        }[slot]
        return filler(), None

    def sample(self) -> Sample:
        template = self.rng.choice(TEMPLATES)
        out: list[str] = []
        spans: list[Span] = []
        at = 0
        length = 0
        for m in re.finditer(r"\{([A-Z_]+)\}", template):
            plain = template[at : m.start()]
            out.append(plain)
            length += len(plain)
            text, kind = self.fill(m.group(1))
            if kind is not None:
                spans.append(Span(kind, length, length + len(text)))
            out.append(text)
            length += len(text)
            at = m.end()
        out.append(template[at:])
        return Sample("".join(out), tuple(spans), "generated")


def corpus(samples: int, seed: int) -> list[Sample]:
    from masking.text.name_forms import name_samples  # person names by form: source = form

    gen = Generator(seed)
    names = name_samples(samples // 20, seed)
    return hard_cases() + names + [gen.sample() for _ in range(samples)]


# -- scoring -----------------------------------------------------------------
@dataclass
class Score:
    tp: int = 0  # labelled entities found
    fn: int = 0
    correct: int = 0  # detections that are right
    fp: int = 0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        return self.correct / (self.correct + self.fp) if self.correct + self.fp else 1.0


def score(samples: Iterable[Sample], detect) -> tuple[dict[str, Score], list[str]]:
    scores = {t: Score() for t in ENTITY_TYPES}
    errors: list[str] = []
    for s in samples:
        found = detect(s.text)
        for g in s.spans:
            if any(e.type == g.type and e.start <= g.start and e.end >= g.end for e in found):
                scores[g.type].tp += 1
            else:
                scores[g.type].fn += 1
                errors.append(f"MISS {g.type} {s.text[g.start : g.end]!r} in {s.text}")
        for e in found:
            if any(g.type == e.type and e.start < g.end and g.start < e.end for g in s.spans):
                scores[e.type].correct += 1
            else:
                scores[e.type].fp += 1
                errors.append(f"FALSE {e.type} {s.text[e.start : e.end]!r} in {s.text}")
    return scores, errors


def report(scores: dict[str, Score]) -> tuple[str, bool]:
    rows = [
        f"{'entity':<15}{'labelled':>9}{'found':>7}{'recall':>8}{'detected':>9}{'precision':>10}  target"
    ]
    ok = True
    for t in ENTITY_TYPES:
        s = scores[t]
        target = RECALL_TARGETS.get(t)
        met = target is None or s.recall >= target
        ok &= met
        rows.append(
            f"{t:<15}{s.tp + s.fn:>9}{s.tp:>7}{s.recall:>8.3f}{s.correct + s.fp:>9}{s.precision:>10.3f}"
            + (f"  recall>={target:.2f} {'ok' if met else 'MISSED'}" if target else "")
        )
    correct = sum(s.correct for s in scores.values())
    detected = correct + sum(s.fp for s in scores.values())
    labelled = sum(s.tp + s.fn for s in scores.values())
    found = sum(s.tp for s in scores.values())
    precision = correct / detected if detected else 1.0
    met = precision >= PRECISION_TARGET
    ok &= met
    rows.append(
        f"{'overall':<15}{labelled:>9}{found:>7}{found / labelled if labelled else 1:>8.3f}{detected:>9}{precision:>10.3f}"
        f"  precision>={PRECISION_TARGET:.2f} {'ok' if met else 'MISSED'}"
    )
    return "\n".join(rows), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m masking.text.evaluation", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--samples", type=int, default=2000, help="generated samples (besides the hard cases)"
    )
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument(
        "--show-errors",
        action="store_true",
        help="print misses and false detections (synthetic data)",
    )
    args = parser.parse_args(argv)
    from masking.text.analyzer import text_analyzer

    analyzer = text_analyzer()
    samples = corpus(args.samples, args.seed)
    started = time.perf_counter()
    scores, errors = score(samples, analyzer.analyze)
    elapsed = time.perf_counter() - started
    table, ok = report(scores)
    chars = sum(len(s.text) for s in samples)
    hard = sum(1 for s in samples if s.source == "hard")
    print(
        f"corpus: {len(samples)} samples ({hard} hand-written hard cases), {chars} characters, seed {args.seed}"
    )
    print(table)
    print(f"analyzed in {elapsed:.2f} s ({chars / elapsed:,.0f} characters/s)")
    if args.show_errors:
        for line in errors:
            print(line)
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
