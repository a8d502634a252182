"""The labelled evaluation corpus: samples, hand-written hard cases, the generator.

A sample is a text, its labelled spans and its form (the way of writing what
it tests: `id.grouped`, `phone.+86`, `harmless.order_number`…); each span has
a form too, so a generated sentence that tests one form scores the others it
contains under theirs. Harmless spans (type KEEP) are values that must stay
unmasked.

- hand-written hard cases (corpus/hard_cases.txt): one sample per line,
  `form<TAB>text` (the form is optional), entities marked [[TYPE:value]] or
  [[TYPE@form:value]], harmless values [[KEEP:value]]; a line with no mark is
  harmless as a whole;
- generated samples: templates filled with Faker zh_CN names, e-mails and
  street names, numbers made valid with python-stdnum and addresses built
  from the GB/T 2260 table (this module), and one sample per form per round
  from the form methods of masking.text.corpus_forms. A seed makes the corpus
  reproducible.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

# The evaluation's targets (masking.text.evaluation, .name_forms).
RECALL_TARGET = 0.98  # every form
KEPT_TARGET = 0.98  # every harmless form
PRECISION_TARGET = 0.95  # overall

HARD_CASES = Path(__file__).with_name("corpus") / "hard_cases.txt"
KEEP = "KEEP"  # a harmless value: detecting anything on it is a false detection
_MARK = re.compile(r"\[\[([A-Z_]+)(?:@([a-z0-9_.+]+))?:(.+?)\]\]", re.S)

# The form of a labelled span that names none: its type's plain form.
DEFAULT_FORMS = {
    "ID_NUMBER": "id.valid",
    "PHONE_NUMBER": "phone.plain",
    "BANK_CARD": "card.plain",
    "USCC": "uscc.plain",
    "PASSPORT": "passport",
    "EMAIL_ADDRESS": "email",
    "VEHICLE_PLATE": "plate",
    "QQ_NUMBER": "qq",
    "WECHAT_ID": "wechat",
    "PERSON": "person",
    "ADDRESS": "address",
    KEEP: "harmless.look_alike",
}


def default_form(entity: str) -> str:
    return DEFAULT_FORMS.get(entity, entity.lower())


@dataclass(frozen=True)
class Span:
    type: str  # an entity type, or KEEP for a harmless value
    start: int
    end: int
    form: str = ""

    @property
    def harmless(self) -> bool:
        return self.type == KEEP


@dataclass(frozen=True)
class Sample:
    text: str
    spans: tuple[Span, ...]
    source: str
    form: str = ""  # what the sample was written to test


def parse_marked(line: str, source: str, form: str = "") -> Sample:
    """'当事人[[PERSON:张三]]…' -> text without marks, and the spans (see the module doc)."""
    out: list[str] = []
    spans: list[Span] = []
    at = 0
    length = 0
    for m in _MARK.finditer(line):
        plain = line[at : m.start()]
        out.append(plain)
        length += len(plain)
        kind, own, value = m.group(1), m.group(2), m.group(3)
        span_form = own or (form if form and (kind == KEEP) == form.startswith("harmless") else "")
        spans.append(Span(kind, length, length + len(value), span_form or default_form(kind)))
        out.append(value)
        length += len(value)
        at = m.end()
    out.append(line[at:])
    text = "".join(out)
    if not spans:  # a line with nothing marked must stay whole
        spans.append(Span(KEEP, 0, len(text), form or default_form(KEEP)))
    return Sample(text, tuple(spans), source, form or spans[0].form)


def hard_cases() -> list[Sample]:
    """The hand-written lines; `\\n` in a line stands for a line break inside the sample."""
    samples = []
    for line in HARD_CASES.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        form, _, text = line.rpartition("\t")
        samples.append(parse_marked(text.replace("\\n", "\n"), "hard", form.strip()))
    return samples


# -- generated samples -------------------------------------------------------
# Slots: {PERSON} {ID_NUMBER} ... fill entities ({BADID}: an ID number with a wrong
# check digit); {ORDER} {AMOUNT} {DATE} {IMPOSSIBLE_ID} {CASE} {PLACE} {NUM} fill
# harmless values that must stay unmasked.
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
    "编号为{IMPOSSIBLE_ID}的申请材料信息有误，请核对后于{DATE}前重新提交。",
    "本年度共受理{NUM}件投诉，办结率{NUM}%，涉及金额{AMOUNT}元。",
)

_GIVEN_CHARS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文德俊浩宇轩涵梓欣怡子晨雨婷思佳博睿嘉琪"
_STREETS = ("人民路", "解放路", "建设路", "和平街", "文化路", "新华街", "中山大道", "滨江路", "桑坪路", "团结街")  # fmt: skip
_TOWNS = ("威州镇", "映秀镇", "水磨镇", "漩口镇", "三江镇", "绵虒镇", "卧龙镇", "耿达镇", "龙溪乡", "雁门乡")  # fmt: skip
_VILLAGES = ("羌锋村", "桑坪村", "老街村", "高店村", "七盘沟村", "布瓦村", "萝卜寨村", "克枯村")
_PLACES = ("张家口市", "马鞍山", "黄山风景区", "王府井", "石家庄", "高新区", "金牛区", "何家湾", "江油市", "李家沱", "白马寺", "周口店", "汶川县", "威州镇", "成都市", "阿坝州")  # fmt: skip
_PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁苏浙赣鄂桂甘晋陕吉闽贵粤青川宁琼"
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_MOBILE_PREFIXES = ("130", "133", "135", "136", "138", "139", "147", "150", "152", "158", "159", "166", "173", "176", "177", "180", "181", "186", "187", "188", "189", "191", "198", "199")  # fmt: skip
_CARD_BINS = ("622202", "621700", "622848", "623668", "625965", "436742")
# First two digits that are no province's (GB/T 2260).
_NO_PROVINCE = ("16", "17", "18", "19", "24", "28", "38", "39", "47", "48", "49", "55", "58", "66", "77", "88", "99")  # fmt: skip


class Generator:
    """Values of every entity type and harmless look-alikes, and samples made of templates."""

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

    def mobile(self) -> str:
        prefix = self.rng.choice(_MOBILE_PREFIXES)
        return prefix + "".join(str(self.rng.randrange(10)) for _ in range(8))

    def landline(self) -> str:
        area = self.rng.choice(("010", "021", "028", "0837", "0816", "0755", "023"))
        number = str(self.rng.randrange(2, 10)) + "".join(
            str(self.rng.randrange(10)) for _ in range(7 if len(area) == 3 else 6)
        )
        return f"{area}-{number}" if self.rng.random() < 0.8 else f"（{area}）{number}"

    def phone(self) -> tuple[str, str, str]:
        r = self.rng.random()
        mobile = self.mobile()
        if r < 0.55:
            return mobile, "PHONE_NUMBER", "phone.plain"
        if r < 0.65:
            return f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}", "PHONE_NUMBER", "phone.hyphen"
        if r < 0.72:
            return f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}", "PHONE_NUMBER", "phone.spaced"
        if r < 0.78:
            return "+86 " + mobile, "PHONE_NUMBER", "phone.+86"
        return self.landline(), "PHONE_NUMBER", "phone.landline"

    def bank_card(self) -> str:
        from stdnum import luhn

        length = self.rng.choice((16, 19, 19))
        body = self.rng.choice(_CARD_BINS) + "".join(
            str(self.rng.randrange(10)) for _ in range(length - 7)
        )
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
        """(text, entity type, or None for a harmless value) for a template slot."""
        text, kind, _ = self.slot(slot)
        return text, None if kind == KEEP else kind

    def slot(self, slot: str) -> tuple[str, str, str]:
        """(text, entity type or KEEP, form) for a template slot."""
        r = self.rng
        makers = {
            "PERSON": (self.person, "person"),
            "BANK_CARD": (self.bank_card, "card.plain"),
            "USCC": (self.uscc, "uscc.plain"),
            "PASSPORT": (self.passport, "passport"),
            "EMAIL_ADDRESS": (self.fake.email, "email"),
            "VEHICLE_PLATE": (self.plate, "plate"),
            "ADDRESS": (self.address, "address"),
        }
        if slot == "ID_NUMBER":
            value = self.id_number()
            return value, slot, "id.valid" if len(value) == 18 else "id.old15"
        if slot == "BADID":
            return self.bad_id(), "ID_NUMBER", "id.wrong_check_digit"
        if slot == "PHONE_NUMBER":
            return self.phone()
        if slot in makers:
            make, form = makers[slot]
            value = make()
            if slot == "BANK_CARD" and " " in value:
                form = "card.grouped"
            return value, slot, form
        harmless = {
            "ORDER": (
                "order_number",
                lambda: "".join(str(r.randrange(10)) for _ in range(r.choice((12, 14, 16, 20)))),
            ),
            "AMOUNT": ("amount", self.amount),
            "DATE": ("date", self.date),
            "IMPOSSIBLE_ID": ("impossible_id", self.impossible_id),
            "CASE": (
                "case_number",
                lambda: f"汶市监罚〔{r.randrange(2015, 2026)}〕{r.randrange(1, 300)}号",
            ),
            "PLACE": ("place", lambda: r.choice(_PLACES)),
            "NUM": ("count", lambda: str(r.randrange(1, 100))),
        }
        name, make = harmless[slot]
        return make(), KEEP, "harmless." + name

    def amount(self) -> str:
        r = self.rng
        return r.choice(
            (
                f"{r.randrange(1, 100000)}",
                f"{r.randrange(1, 100000)}.{r.randrange(100):02d}",
                f"{r.randrange(1, 999)},{r.randrange(1000):03d}.00",
            )
        )

    def date(self) -> str:
        r = self.rng
        y, m, d = r.randrange(2015, 2026), r.randrange(1, 13), r.randrange(1, 29)
        return r.choice((f"{y}年{m}月{d}日", f"{y}-{m:02d}-{d:02d}", f"{y}{m:02d}{d:02d}"))

    def impossible_id(self) -> str:
        """18 digits shaped like an ID number whose county or birth date cannot be."""
        from stdnum.cn import ric

        from masking.text.numbers import region_known

        good = self.id_number()
        while len(good) != 18:
            good = self.id_number()
        r = self.rng
        if r.random() < 0.5:  # a county code that is in no edition of GB/T 2260
            region = good[:6]
            while region_known(region):
                region = r.choice(_NO_PROVINCE) + f"{r.randrange(10000):04d}"
            number = region + good[6:17]
        else:  # month 13-19 or day 32-39, or 30 February
            month, day = r.choice(
                (
                    (f"{r.randrange(13, 20)}", f"{r.randrange(1, 29):02d}"),
                    (f"{r.randrange(1, 13):02d}", f"{r.randrange(32, 40)}"),
                    ("02", "30"),
                )
            )
            number = good[:10] + month + day + good[14:17]
        return number + ric.calc_check_digit(number + "0")

    def render(self, template: str, form: str, fixed: dict[str, tuple[str, str, str]]) -> Sample:
        """Fill a template's {SLOT}s (`fixed` for some of them) into a labelled sample."""
        out: list[str] = []
        spans: list[Span] = []
        at = 0
        length = 0
        for m in re.finditer(r"\{([A-Z_]+)\}", template):
            plain = template[at : m.start()]
            out.append(plain)
            length += len(plain)
            text, kind, span_form = fixed.get(m.group(1)) or self.slot(m.group(1))
            spans.append(Span(kind, length, length + len(text), span_form))
            out.append(text)
            length += len(text)
            at = m.end()
        out.append(template[at:])
        return Sample("".join(out), tuple(spans), "generated", form)

    def sample(self) -> Sample:
        """A sentence of the mixed templates: several entities and look-alikes at once."""
        return self.render(self.rng.choice(TEMPLATES), "mixed", {})
