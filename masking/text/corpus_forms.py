"""Forms: the ways people write each kind of value, one generator method each.

A form method makes one value written that way (`id.grouped`: 5132 2119 8604
1208 90); `@form(name, entity, kind)` registers it with the entity type it is
(KEEP for a harmless value) and the kind of sentence it is put in
(FORM_TEMPLATES). The evaluation makes `per_form` samples of every registered
form and reports recall (for harmless forms: the share kept) form by form, so
adding a form is one method here, plus its hard cases in corpus/hard_cases.txt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from masking.text.corpus_gen import KEEP, Generator, Sample, hard_cases

_WIDE = str.maketrans(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ -",
    "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ\u3000－",
)

# Sentences a form's value {V} is put in, by kind; other slots as in corpus_gen.
FORM_TEMPLATES: dict[str, tuple[str, ...]] = {
    "ID_NUMBER": (
        "当事人{PERSON}，身份证号码{V}，现住{ADDRESS}。",
        "申请人{PERSON}身份证号：{V}，联系电话{PHONE_NUMBER}。",
        "经核对，{PERSON}（公民身份号码 {V}）户籍信息无误。",
        "申请人{PERSON}，{V}，于{DATE}办理低保。",
        "证件号码\n{V}\n已登记。",
    ),
    "ID_NUMBER.typo": (
        "身份证号{V}与系统不符，请申请人{PERSON}核实。",
        "当事人{PERSON}提供的身份证号码{V}校验未通过。",
        "经比对，证件号{V}与户籍系统记录不一致。",
        "当事人{PERSON}的身份证号{V}位数不对，已退回。",
    ),
    "PHONE_NUMBER": (
        "联系电话{V}。",
        "联系人{PERSON}的手机：{V}，已回访。",
        "来电号码 {V} 反映噪音扰民。",
        "请拨打{V}联系{PERSON}。",
        "联系人{PERSON}\n电话 {V}\n地址{ADDRESS}",
    ),
    "BANK_CARD": (
        "银行卡号{V}，户名{PERSON}。",
        "救助金发放至账户：{V}。",
        "{PERSON}名下借记卡 {V} 于{DATE}转入{AMOUNT}元。",
        "开户行：中国农业银行；卡号：{V}。",
    ),
    "USCC": (
        "统一社会信用代码{V}。",
        "企业（统一社会信用代码：{V}）于{DATE}注销。",
        "纳税人识别号 {V}，法定代表人{PERSON}。",
    ),
    "QQ_NUMBER": ("投诉人{PERSON}，QQ：{V}。", "QQ号{V}，", "联系QQ {V}，电话{PHONE_NUMBER}。"),
    "WECHAT_ID": (
        "微信号：{V}，已添加。",
        "投诉人{PERSON}的微信 {V} 发来照片。",
        "加微信{V}联系。",
        "WeChat: {V}",
    ),
    "case_number": (
        "案号{V}，立案日期{DATE}。",
        "依据{V}判决书，被执行人{PERSON}应于{DATE}前履行。",
        "本案（{V}）已审结。",
    ),
    "amount": ("罚款{V}元。", "累计发放救助金{V}元，涉及{NUM}户。", "合同总价款人民币{V}元。"),
    "date": ("于{V}受理。", "办结日期：{V}。", "{V}，{PLACE}召开会议。"),
    "time": ("于{V}到场。", "来电时间{V}，{PERSON}反映情况。"),
    "order_number": ("{V}已于{DATE}发货。", "请核对{V}，金额{AMOUNT}元。", "{V}，{PERSON}已付款。"),
    "impossible_id": ("编号{V}的材料已退回。", "号码{V}格式有误。", "{V}无法识别。"),
}


@dataclass(frozen=True)
class Form:
    name: str
    entity: str  # an entity type, or KEEP for a harmless value
    kind: str  # the key of FORM_TEMPLATES
    make: Callable[[FormGenerator], str]


FORMS: dict[str, Form] = {}


def form(name: str, entity: str, kind: str | None = None) -> Callable[..., Callable[..., str]]:
    """Register a form method: `name` (id.grouped), the entity type it is, its sentences."""

    def register(make: Callable[[FormGenerator], str]) -> Callable[[FormGenerator], str]:
        FORMS[name] = Form(name, entity, kind or entity, make)
        return make

    return register


class FormGenerator(Generator):
    """The generator, and one method per form."""

    def groups(self, value: str, sizes: tuple[int, ...], sep: str) -> str:
        out, at = [], 0
        for size in sizes:
            out.append(value[at : at + size])
            at += size
        return sep.join(part for part in [*out, value[at:]] if part)

    def valid_id(self) -> str:
        number = self.id_number()
        while len(number) != 18:
            number = self.id_number()
        return number

    def line_break(self, value: str) -> str:
        at = self.rng.randrange(3, len(value) - 2)
        return value[:at] + self.rng.choice(("\n", " \n", "\n ", "\r\n")) + value[at:]

    @form("id.valid", "ID_NUMBER")
    def id_valid(self) -> str:
        return self.valid_id()

    @form("id.wrong_check_digit", "ID_NUMBER", "ID_NUMBER.typo")
    def id_wrong_check_digit(self) -> str:
        return self.bad_id()

    @form("id.grouped", "ID_NUMBER")
    def id_grouped(self) -> str:
        sizes = self.rng.choice(((6, 8, 4), (4, 4, 4, 4), (3, 3, 4, 4, 4), (6, 4, 4, 4)))
        return self.groups(self.valid_id(), sizes, self.rng.choice((" ", "-", ".", "  ", " - ")))

    @form("id.fullwidth", "ID_NUMBER")
    def id_fullwidth(self) -> str:
        number = self.valid_id()
        if self.rng.random() < 0.3:
            number = self.groups(number, (6, 8, 4), " ")
        return number.translate(_WIDE)

    @form("id.line_break", "ID_NUMBER")
    def id_line_break(self) -> str:
        return self.line_break(self.valid_id())

    @form("id.digit_count_typo", "ID_NUMBER", "ID_NUMBER.typo")
    def id_digit_count_typo(self) -> str:
        number = self.valid_id()
        at = self.rng.randrange(14, 17)  # a sequence digit, after the county and the birth date
        if self.rng.random() < 0.5:
            return number[:at] + number[at + 1 :]  # a digit left out
        return number[:at] + number[at] + number[at:]  # a digit typed twice

    @form("id.old15", "ID_NUMBER")
    def id_old15(self) -> str:
        number = self.id_number()
        while len(number) != 15:
            number = self.id_number()
        return number

    @form("phone.plain", "PHONE_NUMBER")
    def phone_plain(self) -> str:
        return self.mobile()

    @form("phone.hyphen", "PHONE_NUMBER")
    def phone_hyphen(self) -> str:
        return self.groups(self.mobile(), self.rng.choice(((3, 4, 4), (3, 8), (4, 3, 4))), "-")

    @form("phone.spaced", "PHONE_NUMBER")
    def phone_spaced(self) -> str:
        return self.groups(self.mobile(), self.rng.choice(((3, 4, 4), (4, 3, 4), (3, 8))), " ")

    @form("phone.dotted", "PHONE_NUMBER")
    def phone_dotted(self) -> str:
        return self.groups(self.mobile(), (3, 4, 4), ".")

    @form("phone.+86", "PHONE_NUMBER")
    def phone_plus86(self) -> str:
        mobile = self.mobile()
        prefix = self.rng.choice(("+86 ", "+86-", "+86", "(+86)", "0086 ", "+86 "))
        if self.rng.random() < 0.4:
            mobile = self.groups(mobile, (3, 4, 4), self.rng.choice((" ", "-")))
        return prefix + mobile

    @form("phone.fullwidth", "PHONE_NUMBER")
    def phone_fullwidth(self) -> str:
        mobile = self.mobile()
        if self.rng.random() < 0.4:
            mobile = self.groups(mobile, (3, 4, 4), self.rng.choice((" ", "-")))
        return mobile.translate(_WIDE)

    @form("phone.line_break", "PHONE_NUMBER")
    def phone_line_break(self) -> str:
        return self.line_break(self.mobile())

    @form("phone.landline", "PHONE_NUMBER")
    def phone_landline(self) -> str:
        return self.landline()

    def card(self) -> str:
        card = self.bank_card()
        while " " in card:
            card = self.bank_card()
        return card

    @form("card.plain", "BANK_CARD")
    def card_plain(self) -> str:
        return self.card()

    @form("card.grouped", "BANK_CARD")
    def card_grouped(self) -> str:
        card = self.card()
        sizes = (4, 4, 4, 4) if self.rng.random() < 0.8 else (6, 13)
        return self.groups(card, sizes, self.rng.choice((" ", "-", "  ")))

    @form("card.line_break", "BANK_CARD")
    def card_line_break(self) -> str:
        return self.line_break(self.card())

    @form("card.fullwidth", "BANK_CARD")
    def card_fullwidth(self) -> str:
        return self.card().translate(_WIDE)

    @form("uscc.plain", "USCC")
    def uscc_plain(self) -> str:
        return self.uscc()

    @form("uscc.spaced", "USCC")
    def uscc_spaced(self) -> str:
        sizes = self.rng.choice(((4, 4, 4, 4), (2, 6, 9), (6, 6), (8, 10)))
        return self.groups(self.uscc(), sizes, self.rng.choice((" ", " ", "-")))

    @form("uscc.fullwidth", "USCC")
    def uscc_fullwidth(self) -> str:
        return self.uscc().translate(_WIDE)

    @form("qq", "QQ_NUMBER")
    def qq(self) -> str:
        length = self.rng.choice((5, 6, 8, 9, 9, 10, 10, 10))
        first = str(self.rng.randrange(1, 10))
        return first + "".join(str(self.rng.randrange(10)) for _ in range(length - 1))

    @form("wechat", "WECHAT_ID")
    def wechat(self) -> str:
        r = self.rng
        alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
        if r.random() < 0.4:
            return "wxid_" + "".join(r.choice(alnum) for _ in range(r.randrange(6, 15)))
        head = r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ")
        body = "".join(r.choice(alnum + "_-") for _ in range(r.randrange(5, 16)))
        return head + body.rstrip("_-") + str(r.randrange(10))

    @form("harmless.case_number", KEEP, "case_number")
    def case_number(self) -> str:
        r = self.rng
        court = r.choice(("川3221", "川01", "京0105", "粤0305", "沪0101", "川3201"))
        kind = r.choice(("民初", "刑初", "执", "行初", "民终", "执保"))
        year = r.randrange(2015, 2026)
        return r.choice(("({}){}{}{}号", "（{}）{}{}{}号")).format(
            year, court, kind, r.randrange(1, 9999)
        )

    @form("harmless.amount", KEEP, "amount")
    def harmless_amount(self) -> str:
        r = self.rng
        return r.choice(
            (
                self.amount(),
                f"{r.randrange(1, 99)},{r.randrange(1000):03d},{r.randrange(1000):03d}.{r.randrange(100):02d}",
                f"{r.randrange(1000000, 99999999)}.{r.randrange(100):02d}",
                f"{r.randrange(1, 999)}.{r.randrange(10)}万",
            )
        )

    @form("harmless.date", KEEP, "date")
    def harmless_date(self) -> str:
        r = self.rng
        y, m, d = r.randrange(1990, 2027), r.randrange(1, 13), r.randrange(1, 29)
        return r.choice(
            (self.date(), f"{y}.{m:02d}.{d:02d}", f"{y}/{m}/{d}", f"{y} {m:02d} {d:02d}")
        )

    @form("harmless.time", KEEP, "time")
    def harmless_time(self) -> str:
        r = self.rng
        hm = f"{r.randrange(24):02d}:{r.randrange(60):02d}"
        return r.choice((hm, f"{self.date()} {hm}:{r.randrange(60):02d}", f"{self.date()} {hm}"))

    @form("harmless.order_number", KEEP, "order_number")
    def order_number(self) -> str:
        r = self.rng
        label = r.choice(
            ("订单号", "交易流水号", "流水号", "快递单号", "发票号码", "订单编号：", "业务编号")
        )
        digits = "".join(str(r.randrange(10)) for _ in range(r.choice((12, 16, 18, 19, 20))))
        if r.random() < 0.2:
            digits = self.groups(digits, (4, 4, 4, 4, 4), " ")
        return label + digits

    @form("harmless.impossible_id", KEEP, "impossible_id")
    def harmless_impossible_id(self) -> str:
        return self.impossible_id()

    def form_sample(self, name: str) -> Sample:
        f = FORMS[name]
        template = self.rng.choice(FORM_TEMPLATES[f.kind])
        return self.render(template, name, {"V": (f.make(self), f.entity, name)})


def corpus(samples: int, seed: int, per_form: int = 100) -> list[Sample]:
    """The hard cases, `samples` mixed sentences and `per_form` samples of every form."""
    from masking.text.name_forms import name_samples  # imports this module's base

    gen = FormGenerator(seed)
    out = hard_cases() + name_samples(samples // 20, seed) + [gen.sample() for _ in range(samples)]
    for _ in range(per_form):
        out.extend(gen.form_sample(name) for name in FORMS)
    return out
