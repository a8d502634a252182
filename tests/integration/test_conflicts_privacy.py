"""The conflicts report discloses no raw personal value, whatever the providers hold (property).

Each example puts one more person in both registers, disagreeing on one
attribute or only in formatting, then reads the whole report over RPC and
through the CLI (JSON, CSV and human). No raw name, birth date, address or ID
number of any person in the pool may appear in the report, the CLI output, the
gateway's logs or the audit trail; and the new person is reported exactly
when the registers disagree beyond formatting.

Nor may a *fragment* of the new person's values beyond what their masked forms
show: the report's pair differences (distance, lengths, positions, the steps
that made two values equal) are numbers and words, never characters, and no
part of a name, date or address past the mask (a given name, a day, a street)
may appear in what the report says about that person.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from clients.cli import main
from clients.sdk import to_json
from gateway import admin
from gateway.pool.seed import BULK_ORDER_BASE, COUNTIES, NAME_VARIANTS, PROVINCE_PREFECTURE
from tests.support import CapturedLogs, Harness, make_data_dir, start

POP, AID = "population.basic", "social_assistance.recipient"
COORDINATOR = "coordinator"
SURNAMES = "陈李王张刘杨赵黄周吴徐孙马朱胡郭何林罗梁"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂英华玉兰"
KINDS = ("person.name", "person.birth_date", "person.address", "")  # "": formatting only
# Order codes of the bulk range: never a demo person's.
_ORDERS = itertools.count(BULK_ORDER_BASE)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("conflicts-privacy")
    keys, demo = make_data_dir(data_dir, persons=120, entities=5)
    keys[COORDINATOR] = admin.callers_add(data_dir, COORDINATOR, "admin", "州大数据局", "513200")[
        "api_key"
    ]
    h = start(data_dir, keys, demo)
    yield h
    h.stop()


@st.composite
def registers(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, str], str]:
    """(population row, assistance row, the attribute they disagree on or "")."""
    county = draw(st.sampled_from(COUNTIES))
    born = draw(st.dates(date(1940, 1, 1), date(2010, 12, 31)))
    order = next(_ORDERS)
    prefix = county.id_prefix(born.year)
    body = f"{prefix}{born:%Y%m%d}{order % 1000:03d}"
    name = draw(st.sampled_from(SURNAMES)) + draw(st.text(GIVEN, min_size=1, max_size=2))
    town = draw(st.sampled_from(county.towns))
    village = draw(st.sampled_from(("羌锋", "布瓦", "桃坪", "甘堡", "龙溪")))
    group, house = draw(st.integers(1, 9)), draw(st.integers(1, 80))
    address = f"{PROVINCE_PREFECTURE}{county.name}{town}{village}村{group}组{house}号"
    pop = {
        "id_number": body + ric.calc_check_digit(body + "0"),
        "name": name,
        "gender": "男" if order % 2 else "女",
        "birth_date": born.isoformat(),
        "ethnicity": "汉族",
        "household_address": address,
        "region_code": county.region_code,
        "phone": "13800001234",
    }
    # What a clerk re-typing the same facts may change: none of it is a conflict.
    retyped_name = draw(st.sampled_from((name, name[0] + " " + name[1:], name + "\u3000")))
    retyped_address = draw(
        st.sampled_from(
            (
                address,
                address.removeprefix(PROVINCE_PREFECTURE),
                address.removesuffix("号"),
                address.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
                address.replace(PROVINCE_PREFECTURE, PROVINCE_PREFECTURE + " "),
            )
        )
    )
    aid = {
        "id_number": pop["id_number"],
        "name": retyped_name.strip(),
        "birth_date": born.isoformat(),
        "household_address": retyped_address,
        "assistance_type": "最低生活保障",
        "start_date": "2024-01-01",
        "end_date": "",
        "monthly_amount": "700.00",
        "region_code": county.region_code,
    }
    kind = draw(st.sampled_from(KINDS))
    if kind == "person.name":
        i = next((i for i, ch in enumerate(name) if ch in NAME_VARIANTS), len(name) - 1)
        other = NAME_VARIANTS.get(name[i], "瑪")
        aid["name"] = name[:i] + other + name[i + 1 :]
    elif kind == "person.birth_date":
        aid["birth_date"] = (born + timedelta(days=draw(st.integers(1, 400)))).isoformat()
    elif kind == "person.address":
        aid["household_address"] = address.replace(f"{house}号", f"{house + 100}号")
    return pop, aid, kind


# A keyed hash, a version and a time: no value of the person is in them, but
# their digits and hex would match digits of a birth date or an ID number.
_NOT_FROM_VALUES = {"subject_hash", "subjectHash", "dataset_version", "datasetVersion",
                    "imported_at", "importedAt"}  # fmt: skip


def _shown(doc: object) -> object:
    if isinstance(doc, dict):
        return {k: _shown(v) for k, v in doc.items() if k not in _NOT_FROM_VALUES}
    if isinstance(doc, list):
        return [_shown(v) for v in doc]
    return doc


def _is_cjk(text: str) -> bool:
    return any(ord(ch) >= 0x2E80 for ch in text)


def fragments_past_the_mask(raws: Iterable[str], masked: Iterable[str]) -> set[str]:
    """Substrings of the raw values no masked form shows: two characters with a Chinese one,
    else three (two digits are in every position list)."""
    allowed = [m for m in masked if m]
    out = set()
    for raw in raws:
        for i in range(len(raw)):
            for j in range(i + (2 if _is_cjk(raw[i : i + 2]) else 3), len(raw) + 1):
                part = raw[i:j]
                # A fragment at a space is the same fragment without it (a report's
                # columns are separated by spaces): count the stripped one only.
                if part != part.strip():
                    continue
                if not any(part in m for m in allowed):
                    out.add(part)
    return out


def raw_values(h: Harness) -> set[str]:
    out: set[str] = set()
    for ds in (POP, AID):
        for row in h.parts.pool.iter_rows(ds):
            out |= {row[k] for k in ("id_number", "name", "birth_date", "household_address")}
    return out - {""}


@pytest.mark.requirement("R16")
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=registers())
def test_no_raw_value_leaves_and_only_real_disagreements_are_reported(
    gw: Harness,
    gateway_logs: CapturedLogs,
    capsys: pytest.CaptureFixture[str],
    example: tuple[dict[str, str], dict[str, str], str],
) -> None:
    pop, aid, kind = example
    gw.parts.pool.write_batch(POP, [pop])
    gw.parts.pool.write_batch(AID, [aid])
    subject = gw.parts.keyring.subject_hash(pop["id_number"])
    with gw.client(COORDINATOR) as c:
        report = list(c.conflicts_report(page_size=7))
    entries = [x for x in report if x.subject_hash == subject]
    assert {x.attribute for x in entries} == ({kind} if kind else set())
    assert all(len(x.differences) == 1 for x in entries)  # two registers: one pair
    args = ["--target", gw.target, "--api-key", gw.keys[COORDINATOR], "conflicts", "report"]
    assert main([*args, "--json"]) == 0
    as_json = capsys.readouterr().out
    assert main([*args, "--csv"]) == 0
    as_csv = capsys.readouterr().out
    assert main(args) == 0
    assert main([*args, "--attribute", "person.birth_date"]) == 0
    out = capsys.readouterr()
    seen = "\n".join(
        (str(report), as_json, as_csv, out.out, out.err, gateway_logs.text, gw.audit_text())
    )
    leaked = [raw for raw in raw_values(gw) if raw in seen]
    assert leaked == [], f"{len(leaked)} raw value(s) in the output, logs or audit"
    # What the report says about the new person shows nothing past the masks.
    about = [_shown(to_json(x)) for x in entries]
    about += [_shown(e) for e in json.loads(as_json)["conflicts"] if e["subject_hash"] == subject]
    about += [
        _shown(row) for row in csv.DictReader(io.StringIO(as_csv)) if row["subject_hash"] == subject
    ]
    masked = {x.subject_masked for x in entries} | {
        v.masked_value for x in entries for v in x.values
    }
    past = fragments_past_the_mask(
        (
            r[k]
            for r in (pop, aid)
            for k in ("id_number", "name", "birth_date", "household_address")
        ),
        masked,
    )
    text = json.dumps(about, ensure_ascii=False)
    shown = [f for f in past if f in text]
    assert shown == [], f"{len(shown)} fragment(s) past the mask in the report of the person"
    # The human form, whole: no Chinese fragment past every mask the report shows
    # (another person's masked address may well hold this one's county).
    every_mask = {x.subject_masked for x in report} | {
        v.masked_value for x in report for v in x.values
    }
    wide = fragments_past_the_mask(
        (r[k] for r in (pop, aid) for k in ("name", "household_address")), every_mask
    )
    shown = [f for f in wide if _is_cjk(f) and f in out.out]
    assert shown == [], f"{len(shown)} fragment(s) past the mask in the human report"
