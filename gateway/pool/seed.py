"""Demo data: a synthetic county pool in Aba prefecture (阿坝藏族羌族自治州).

Everything here is made up (Faker zh_CN, seeded, so the same seed gives the
same people), but valid: ID numbers and USCCs carry correct check characters,
birth dates and genders agree with the ID numbers, and every demo row passes
validate_row. `bulk_persons` is the benchmark's fast path for a million people.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from faker import Faker
from stdnum.cn import ric, uscc

from gateway.pool.store import Pool
from gateway.pool.validate import validate_row

PROVINCE_PREFECTURE = "四川省阿坝藏族羌族自治州"
AREA_CODE = "0837"  # Aba's telephone area code
# Data "as of" this day, so that which licences have expired does not depend
# on when the seeder runs.
REFERENCE_DATE = date(2026, 11, 21)
BIRTH_FIRST = date(1940, 1, 1)
BIRTH_LAST = date(2015, 12, 31)
# Order codes (ID digits 15-17): the demo uses 000-499, bulk_persons 500-999,
# so a benchmark pool of bulk persons never overwrites a demo person.
DEMO_ORDER_CODES = range(0, 500)
BULK_ORDER_BASE = 500


@dataclass(frozen=True)
class County:
    region_code: str
    name: str
    short: str
    towns: tuple[str, ...]

    def id_prefix(self, birth_year: int) -> str:
        # Maerkang became a city (513201) in 2015; people registered before
        # carry the county's old code 513229 in their ID number for life.
        if self.region_code == "513201" and birth_year < 2015:
            return "513229"
        return self.region_code


COUNTIES = (
    County("513201", "马尔康市", "马尔康", ("马尔康镇", "卓克基镇", "松岗镇", "党坝乡")),
    County("513221", "汶川县", "汶川", ("威州镇", "映秀镇", "水磨镇", "卧龙镇", "绵虒镇")),
    County("513222", "理县", "理县", ("杂谷脑镇", "米亚罗镇", "古尔沟镇", "薛城镇")),
    County("513223", "茂县", "茂县", ("凤仪镇", "南新镇", "叠溪镇", "回龙乡")),
    County("513224", "松潘县", "松潘", ("进安镇", "川主寺镇", "镇江关镇", "安宏乡")),
)
VILLAGES = (
    "羌锋", "布瓦", "萝卜", "桃坪", "甘堡", "西山", "团结", "红旗", "和平", "新桥",
    "龙溪", "草坡", "三江", "古城", "沙坝", "坪头", "高山", "河坝", "色尔", "雅都",
)  # fmt: skip
ETHNICITIES = (("藏族", 55), ("羌族", 20), ("汉族", 22), ("回族", 3))
TIBETAN_FIRST = ("泽仁", "格桑", "尼玛", "达瓦", "次仁", "扎西", "洛让", "三郎", "益西", "仁青")
TIBETAN_MALE = ("多吉", "旦真", "贡布", "索朗", "降措", "扎西", "彭措", "尼玛")
TIBETAN_FEMALE = ("卓玛", "拉姆", "央金", "志玛", "德吉", "曲珍", "拉措", "初")
MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
    "153", "155", "157", "158", "159", "177", "180", "181", "182", "183", "187", "188",
    "189", "199",
)  # fmt: skip
ENTITY_STATUS = (("存续", 80), ("在业", 8), ("吊销", 4), ("注销", 6), ("迁出", 2))
INDUSTRIES = (
    "旅游开发", "农业科技", "牦牛肉食品", "羌绣文化", "藏药", "建筑工程", "民宿",
    "商贸", "水电开发", "运输", "中药材种植", "文化传媒",
)  # fmt: skip
LICENCE_TYPES = ("食品经营许可证", "旅馆业特种行业许可证", "道路运输经营许可证", "药品经营许可证")
ASSISTANCE = (
    ("最低生活保障", 70, 650, 820),
    ("特困人员供养", 15, 1050, 1300),
    ("临时救助", 15, 300, 1500),
)
CREDIT = (("行政处罚", 60), ("守信激励", 30), ("失信惩戒", 10))
# Variant characters (异体字 and traditional forms) a register may hold for a
# name's character: the same person, written differently by two providers.
NAME_VARIANTS = {
    "玛": "瑪", "华": "華", "丽": "麗", "军": "軍", "国": "國", "红": "紅", "杰": "傑",
    "峰": "峯", "群": "羣", "珍": "珎", "达": "達", "扎": "紮", "泽": "澤", "桑": "桒",
}  # fmt: skip
# Formatting a civil-affairs register adds to the address it copied: none of
# it may count as a conflict (gateway.pool.conflicts normalizes it away).
_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
PENALTY_REASONS = (
    "未按规定公示年度报告",
    "经营超过保质期的食品",
    "未取得许可从事道路运输经营",
    "虚假宣传旅游服务",
    "未按规定落实消防安全措施",
)
# GB 11714 organization-code weights, for the 9 characters inside a USCC.
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@dataclass(frozen=True)
class DemoPerson:
    name: str
    id_number: str
    gender: str
    birth_date: str
    ethnicity: str
    region_code: str
    household_address: str
    phone: str
    assistance_type: str = ""


@dataclass(frozen=True)
class PlantedConflict:
    """A value the demo's civil-affairs register holds differently from the police's."""

    id_number: str
    attribute: str  # person.name, person.birth_date or person.address
    dataset: str
    field: str


@dataclass(frozen=True)
class DemoEntity:
    name: str
    uscc: str
    region_code: str
    status: str
    legal_representative: str
    established_date: str
    licence_no: str = ""
    licence_type: str = ""
    licence_status: str = ""
    licence_valid_until: str = ""


@dataclass(frozen=True)
class DemoSubjects:
    """Known subjects of a seeded pool, for docs, demos and tests."""

    adult_resident: DemoPerson
    minor: DemoPerson
    assistance_recipient: DemoPerson
    active_entity: DemoEntity
    deregistered_entity: DemoEntity
    versions: dict[str, str] = field(default_factory=dict)
    planted_conflicts: tuple[PlantedConflict, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, as saved to the data directory's demo.json."""
        return asdict(self)


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _id_number(prefix: str, born: date, order: int) -> str:
    body = f"{prefix}{born:%Y%m%d}{order:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects a check digit slot


def _uscc(rng: random.Random, kind: str, region_code: str) -> str:
    org = "".join(rng.choice(_ORG_ALPHABET[:10] if i < 2 else _ORG_ALPHABET) for i in range(8))
    total = sum(_ORG_ALPHABET.index(c) * w for c, w in zip(org, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    org += {10: "X", 11: "0"}.get(check, str(check))
    body = f"9{kind}{region_code}{org}"
    return body + uscc.calc_check_digit(body)


def _retyped_address(rng: random.Random, address: str) -> str:
    """The address as another register might have typed it: same place, other formatting."""
    r = rng.random()
    if r < 0.6:
        return address
    if r < 0.7:
        return address.removeprefix(PROVINCE_PREFECTURE)
    if r < 0.8:
        return address.translate(_FULL_WIDTH)
    if r < 0.9:
        return address.removesuffix("号")
    return address.replace(
        PROVINCE_PREFECTURE, PROVINCE_PREFECTURE[:3] + " " + PROVINCE_PREFECTURE[3:]
    )


def _variant_name(name: str) -> str | None:
    """The name with its first variant-bearing character swapped, or None."""
    for i, ch in enumerate(name):
        if ch in NAME_VARIANTS:
            return name[:i] + NAME_VARIANTS[ch] + name[i + 1 :]
    return None


def _random_date(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


class _Generator:
    """Name, address and phone makers shared by the demo seeder and the bulk path."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)

    def name(self, ethnicity: str, male: bool) -> str:
        if ethnicity == "藏族":
            last = TIBETAN_MALE if male else TIBETAN_FEMALE
            return self.rng.choice(TIBETAN_FIRST) + self.rng.choice(last)
        return self.fake.name_male() if male else self.fake.name_female()

    def address(self, county: County) -> str:
        town = self.rng.choice(county.towns)
        if self.rng.random() < 0.6:
            village = self.rng.choice(VILLAGES)
            rest = f"{village}村{self.rng.randint(1, 9)}组{self.rng.randint(1, 80)}号"
        else:
            rest = f"{self.fake.street_name()}{self.rng.randint(1, 300)}号"
        return f"{PROVINCE_PREFECTURE}{county.name}{town}{rest}"

    def mobile(self) -> str:
        return self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"

    def phone(self) -> str:
        if self.rng.random() < 0.1:
            return f"{AREA_CODE}-{self.rng.randint(2000000, 8999999)}"
        return self.mobile()


class _Seeder:
    def __init__(self, pool: Pool, seed: int) -> None:
        self.pool = pool
        self.gen = _Generator(seed)
        self.rng = self.gen.rng
        self.used_ids: set[str] = set()
        self.used_usccs: set[str] = set()

    def person(
        self, *, county: County | None = None, born: date | None = None, male: bool | None = None
    ) -> dict[str, str]:
        county = county or self.rng.choice(COUNTIES)
        male = self.rng.random() < 0.5 if male is None else male
        ethnicity = _weighted(self.rng, ETHNICITIES)
        while True:
            birth = born or _random_date(self.rng, BIRTH_FIRST, BIRTH_LAST)
            order = self.rng.randrange(DEMO_ORDER_CODES.start, DEMO_ORDER_CODES.stop, 2)
            order += 1 if male else 0  # the order code is odd for men
            id_number = _id_number(county.id_prefix(birth.year), birth, order)
            if id_number not in self.used_ids:
                break
        self.used_ids.add(id_number)
        return {
            "id_number": id_number,
            "name": self.gen.name(ethnicity, male),
            "gender": "男" if male else "女",
            "birth_date": birth.isoformat(),
            "ethnicity": ethnicity,
            "household_address": self.gen.address(county),
            "region_code": county.region_code,
            "phone": self.gen.phone(),
        }

    def assistance(self, person: dict[str, str], kind: str | None = None) -> dict[str, str]:
        row = self.rng.choices(ASSISTANCE, weights=[a[1] for a in ASSISTANCE])[0]
        if kind:
            row = next(a for a in ASSISTANCE if a[0] == kind)
        name, _, low, high = row
        start = _random_date(self.rng, date(2018, 1, 1), REFERENCE_DATE - timedelta(days=60))
        end = ""
        if name == "临时救助":
            end = (start + timedelta(days=self.rng.choice((30, 90, 180)))).isoformat()
        return {
            "id_number": person["id_number"],
            "name": person["name"],
            # Copied from the household register when the application was
            # made; now and then left blank, or re-typed with formatting of
            # the clerk's own (which is no conflict).
            "birth_date": person["birth_date"] if self.rng.random() < 0.9 else "",
            "household_address": _retyped_address(self.rng, person["household_address"]),
            "assistance_type": name,
            "start_date": start.isoformat(),
            "end_date": end,
            "monthly_amount": f"{self.rng.randint(low, high)}.00",
            "region_code": person["region_code"],
        }

    def entity(self, *, status: str | None = None) -> dict[str, str]:
        county = self.rng.choice(COUNTIES)
        industry = self.rng.choice(INDUSTRIES)
        if industry == "中药材种植":
            kind, suffix = "3", "专业合作社"  # 93: farmers' cooperatives
        else:
            kind, suffix = "1", self.rng.choice(("有限公司", "有限责任公司"))
        while (code := _uscc(self.rng, kind, county.region_code)) in self.used_usccs:
            pass
        self.used_usccs.add(code)
        street = self.gen.fake.street_name()
        return {
            "uscc": code,
            "name": f"{county.short}{self.gen.fake.company_prefix()}{industry}{suffix}",
            "legal_representative": self.gen.fake.name(),
            "registered_address": f"{PROVINCE_PREFECTURE}{county.name}"
            f"{self.rng.choice(county.towns)}{street}{self.rng.randint(1, 300)}号",
            "region_code": county.region_code,
            "status": status or _weighted(self.rng, ENTITY_STATUS),
            "established_date": _random_date(
                self.rng, date(1995, 1, 1), REFERENCE_DATE - timedelta(days=400)
            ).isoformat(),
        }

    def licence(self, entity: dict[str, str], *, valid: bool = False) -> dict[str, str]:
        county = next(c for c in COUNTIES if c.region_code == entity["region_code"])
        kind = self.rng.choice(LICENCE_TYPES)
        serial = self.rng.randrange(10**6)
        numbers = {
            "食品经营许可证": f"JY1{county.region_code}{serial:06d}{serial % 10}",
            "旅馆业特种行业许可证": f"川公特旅字{county.region_code}{serial:06d}号",
            "道路运输经营许可证": f"川交运管许可阿字{county.region_code}{serial:06d}号",
            "药品经营许可证": f"川CB{county.region_code[2:]}{serial:06d}",
        }
        first = max(date.fromisoformat(entity["established_date"]), date(2015, 1, 1))
        if valid:
            issued = _random_date(self.rng, REFERENCE_DATE - timedelta(days=700), REFERENCE_DATE)
        else:
            issued = _random_date(self.rng, first, REFERENCE_DATE - timedelta(days=30))
        until = issued.replace(year=issued.year + 5) - timedelta(days=1)
        if entity["status"] in ("注销", "吊销"):
            status = entity["status"]
        elif until < REFERENCE_DATE:
            status = "过期"
        elif not valid and self.rng.random() < 0.03:
            status = "注销"
        else:
            status = "有效"
        return {
            "uscc": entity["uscc"],
            "licence_no": numbers[kind],
            "licence_type": kind,
            "issuer": f"{county.name}行政审批局",
            "issued_date": issued.isoformat(),
            "valid_until": until.isoformat(),
            "status": status,
        }

    def credit(self, entity: dict[str, str]) -> dict[str, str]:
        county = next(c for c in COUNTIES if c.region_code == entity["region_code"])
        kind = _weighted(self.rng, CREDIT)
        decided = _random_date(self.rng, date(2019, 1, 1), REFERENCE_DATE)
        n = self.rng.randint(1, 300)
        if kind == "守信激励":
            content = f"{decided.year}年度纳税信用A级纳税人"
            authority = "国家税务总局" + county.name + "税务局"
            decision_no = f"{county.short}税信〔{decided.year}〕{n}号"
        else:
            reason = self.rng.choice(PENALTY_REASONS)
            # Some decisions name the legal representative: real free text
            # does, and the masking layer must catch it.
            who = (
                f"（法定代表人：{entity['legal_representative']}）"
                if self.rng.random() < 0.4
                else ""
            )
            content = f"当事人{who}{reason}，依法给予警告并处罚款{self.rng.randint(1, 50)}千元。"
            authority = county.name + "市场监督管理局"
            decision_no = f"{county.short}市监罚〔{decided.year}〕{n}号"
        return {
            "uscc": entity["uscc"],
            "record_type": kind,
            "decision_no": decision_no,
            "authority": authority,
            "decided_on": decided.isoformat(),
            "content": content,
            "status": self.rng.choices(("有效", "已修复", "已撤销"), weights=(75, 20, 5))[0],
        }

    def write(self, dataset: str, rows: list[dict[str, str]]) -> str:
        ds = self.pool.catalog.get(dataset)
        if ds is None:
            raise ValueError(f"unknown dataset {dataset!r}")
        for row in rows:
            _, problems = validate_row(ds, row)
            if problems:
                # A generator bug, not bad input: fail loudly, naming fields only.
                raise RuntimeError(f"seeder produced an invalid {dataset} row: {problems}")
        return self.pool.write_normalized(dataset, rows, replace_all=True)


def seed_demo(
    pool: Pool, *, persons: int = 2000, entities: int = 300, seed: int = 20261121
) -> DemoSubjects:
    """Replace the demo datasets with a deterministic synthetic county pool."""
    if persons < 3 or entities < 2:
        raise ValueError("the demo needs at least 3 persons and 2 entities")
    s = _Seeder(pool, seed)
    wenchuan = COUNTIES[1]
    adult = s.person(county=wenchuan, born=date(1986, 4, 12), male=True)
    adult["phone"] = s.gen.mobile()  # the demo shows mobile masking (138****1234)
    minor = s.person(county=COUNTIES[3], born=date(2015, 7, 3), male=False)
    recipient = s.person(county=COUNTIES[0], born=date(1958, 9, 30), male=False)
    people = [adult, minor, recipient] + [s.person() for _ in range(persons - 3)]
    assisted = [s.assistance(recipient, "最低生活保障")]
    planted, assisted_rest = _plant_conflicts(s, people[3:])
    assisted += assisted_rest

    active = s.entity(status="存续")
    gone = s.entity(status="注销")
    companies = [active, gone] + [s.entity() for _ in range(entities - 2)]
    active_licence = s.licence(active, valid=True)
    licences = [active_licence, s.licence(gone)]
    for e in companies[2:]:
        if s.rng.random() < 0.85:
            licences += [s.licence(e) for _ in range(s.rng.choice((1, 1, 1, 2)))]
    credits = [s.credit(e) for e in companies if s.rng.random() < 0.2]

    versions = {
        "population.basic": s.write("population.basic", people),
        "social_assistance.recipient": s.write("social_assistance.recipient", assisted),
        "legal_entity.basic": s.write("legal_entity.basic", companies),
        "licence.business": s.write("licence.business", licences),
        "credit.record": s.write("credit.record", credits),
    }

    def demo_person(row: dict[str, str]) -> DemoPerson:
        return DemoPerson(**row)

    def demo_entity(row: dict[str, str], licence: dict[str, str] | None) -> DemoEntity:
        e = DemoEntity(**{k: v for k, v in row.items() if k != "registered_address"})
        if licence:
            e = replace(
                e,
                licence_no=licence["licence_no"],
                licence_type=licence["licence_type"],
                licence_status=licence["status"],
                licence_valid_until=licence["valid_until"],
            )
        return e

    return DemoSubjects(
        adult_resident=demo_person(adult),
        minor=demo_person(minor),
        assistance_recipient=replace(demo_person(recipient), assistance_type="最低生活保障"),
        active_entity=demo_entity(active, active_licence),
        deregistered_entity=demo_entity(gone, licences[1]),
        versions=versions,
        planted_conflicts=planted,
    )


def _plant_conflicts(
    s: _Seeder, people: list[dict[str, str]]
) -> tuple[tuple[PlantedConflict, ...], list[dict[str, str]]]:
    """Assistance rows for about 3% of `people`, three of them disagreeing with population.basic.

    One per attribute of R16: a variant character in the name, a birth date
    off by some days (a lunar birthday copied as solar is the common cause),
    an address in another town. Everyone else agrees, up to formatting.
    """
    ds = "social_assistance.recipient"
    if len(people) < 3:  # a tiny demo: no room to plant, everyone agrees
        return (), [s.assistance(p) for p in people if s.rng.random() < 0.03]
    named = next((p for p in people if _variant_name(p["name"])), people[0])
    dated, moved = [p for p in people if p is not named][:2]
    rows = []
    row = s.assistance(named)
    # No name with a character of the table: a wrong last character instead.
    row["name"] = _variant_name(named["name"]) or named["name"][:-1] + "瑪"
    rows.append(row)
    row = s.assistance(dated)
    row["birth_date"] = (
        date.fromisoformat(dated["birth_date"]) + timedelta(days=s.rng.randint(10, 40))
    ).isoformat()
    rows.append(row)
    row = s.assistance(moved)
    county = next(c for c in COUNTIES if c.region_code == moved["region_code"])
    while (address := s.gen.address(county)) == moved["household_address"]:
        pass
    row["household_address"] = address
    rows.append(row)
    planted = (
        PlantedConflict(named["id_number"], "person.name", ds, "name"),
        PlantedConflict(dated["id_number"], "person.birth_date", ds, "birth_date"),
        PlantedConflict(moved["id_number"], "person.address", ds, "household_address"),
    )
    special = {named["id_number"], dated["id_number"], moved["id_number"]}
    rows += [
        s.assistance(p) for p in people if p["id_number"] not in special and s.rng.random() < 0.03
    ]
    return planted, rows


def _bulk_rows(n: int, seed: int) -> Iterator[dict[str, str]]:
    gen = _Generator(seed)
    rng = gen.rng
    rnd = rng.random
    # Per-row Faker calls and date formatting would dominate a million rows:
    # draw names and addresses once, format every possible birth date once,
    # then only combine (random() and indexing are the cheapest draws).
    names = {
        (eth, male): [gen.name(eth, male) for _ in range(400)]
        for eth, _ in ETHNICITIES
        for male in (True, False)
    }
    addresses = [[gen.address(c) for _ in range(500)] for c in COUNTIES]
    eth_values = [e for e, _ in ETHNICITIES]
    eth_cum = [w / 100 for w in accumulate(w for _, w in ETHNICITIES)]
    days = (BIRTH_LAST - BIRTH_FIRST).days + 1
    births = [BIRTH_FIRST + timedelta(days=d) for d in range(days)]
    ymd = [f"{b:%Y%m%d}" for b in births]
    iso = [b.isoformat() for b in births]
    prefixes = [[c.id_prefix(b.year) for b in births] for c in COUNTIES]
    orders = 1000 - BULK_ORDER_BASE
    # An affine map i -> (a*i + b) mod space is a permutation of the space, so
    # every row gets a distinct (county, birth date, order code) without a
    # set of a million seen numbers, and births are spread over all years.
    space = len(COUNTIES) * days * orders
    if n > space:
        raise ValueError(f"bulk_persons can make at most {space} distinct persons")
    a = rng.randrange(space // 3, space)
    while math.gcd(a, space) != 1:
        a += 1
    b = rng.randrange(space)
    for i in range(n):
        j, c = divmod((a * i + b) % space, len(COUNTIES))
        day, order = divmod(j, orders)
        order += BULK_ORDER_BASE
        male = order % 2 == 1
        ethnicity = eth_values[bisect(eth_cum, rnd())]
        body = f"{prefixes[c][day]}{ymd[day]}{order}"
        pool = names[ethnicity, male]
        addr = addresses[c]
        if rnd() < 0.1:
            phone = f"{AREA_CODE}-{2000000 + int(rnd() * 7000000)}"
        else:
            phone = f"{MOBILE_PREFIXES[int(rnd() * len(MOBILE_PREFIXES))]}{int(rnd() * 1e8):08d}"
        yield {
            "id_number": body + ric.calc_check_digit(body + "0"),
            "name": pool[int(rnd() * len(pool))],
            "gender": "男" if male else "女",
            "birth_date": iso[day],
            "ethnicity": ethnicity,
            "household_address": addr[int(rnd() * len(addr))],
            "region_code": COUNTIES[c].region_code,
            "phone": phone,
        }


def bulk_persons(
    pool: Pool, n: int, *, seed: int = 1, assisted: float = 0.0, conflicting: float = 0.0
) -> dict[str, int]:
    """Add n synthetic, valid population.basic rows in one transaction.

    Skips validate_row (its ID number check alone costs ~100 us a row) but the
    rows are built to pass it. Order codes 500-999 keep them apart from the
    demo's persons; a person already in the pool is replaced, as with any write.

    With `assisted`, that share of the persons also get a
    social_assistance.recipient row (for the conflicts report's benchmark),
    and `conflicting` of those disagree on one attribute, the three kinds in
    turn. Returns the counts written.
    """
    rng = random.Random(seed + 1)  # its own stream: the persons stay those of `seed`
    aid: list[dict[str, str]] = []
    planted = 0

    def persons() -> Iterator[dict[str, str]]:
        nonlocal planted
        for row in _bulk_rows(n, seed):
            if assisted and rng.random() < assisted:
                a = {
                    "id_number": row["id_number"],
                    "name": row["name"],
                    "birth_date": row["birth_date"],
                    "household_address": _retyped_address(rng, row["household_address"]),
                    "assistance_type": "最低生活保障",
                    "start_date": "2024-01-01",
                    "end_date": "",
                    "monthly_amount": "700.00",
                    "region_code": row["region_code"],
                }
                if rng.random() < conflicting:
                    kind = planted % 3
                    if kind == 0:
                        a["name"] = _variant_name(a["name"]) or a["name"] + "某"
                    elif kind == 1:
                        born = date.fromisoformat(a["birth_date"]) + timedelta(days=17)
                        a["birth_date"] = born.isoformat()
                    else:
                        a["household_address"] += "附1号"
                    planted += 1
                aid.append(a)
            yield row

    pool.write_normalized("population.basic", persons())
    if aid:
        pool.write_normalized("social_assistance.recipient", aid)
    return {"persons": n, "assisted": len(aid), "conflicting": planted}
