"""The deadlines report (R3 assessment) end to end, on the real holiday calendar.

Items are received on Monday 1 June 2026 (10:00 China time). The Aba profile:
share 7, open 15, correction 5 working days. Dragon Boat Festival 2026 is
Friday 19 June (no working day), which the "overdue by" counts must skip.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from clients.sdk.types import DeadlineItemKind
from gateway import admin
from gateway.access.subject_tokens import load_private_key, mint
from tests.support import Harness, expect_error, make_data_dir, shifted_clock, start

TODAY = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # Monday, 10:00 in China
LATER = datetime(2026, 6, 22, 2, 0, tzinfo=UTC)  # Monday after the Dragon Boat Festival
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
SA = "social_assistance.recipient"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("deadlines")
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    for cid, kind, dept, providers in (
        ("agency-approval", "agency", "汶川县行政审批局", ("county.administrative-approval",)),
        ("agency-police", "agency", "汶川县公安局", ("county.public-security",)),
        ("root", "admin", "州大数据局", ()),
    ):
        keys[cid] = admin.callers_add(data_dir, cid, kind, dept, "513221", provider_ids=providers)[
            "api_key"
        ]
    h = start(data_dir, keys, demo, clock=shifted_clock(TODAY), sweep_interval_s=0)
    yield h
    h.stop()


@pytest.fixture(scope="module")
def filed(gw: Harness) -> dict[str, str]:
    """One item of each kind, received on 1 June, each for a different provider."""
    with gw.client("agency-far") as c:
        share = c.apply(SA, ["name", "assistance_type"], purpose="低保对象复核",
                        scenario="复核救助类型", duration_days=90)  # fmt: skip
    with gw.client("public-portal") as c:
        opened = c.apply(
            "licence.business", ["licence_type", "status"], purpose="营商环境研究",
            scenario="统计证照状态", duration_days=30, use="research", public_interest=True,
            security_commitment_accepted=True, use_agreement_accepted=True,
        )  # fmt: skip
    key = load_private_key((gw.data_dir / "keys" / "demo-subject-issuer.pem").read_bytes())
    pid = gw.demo["minor"]["id_number"]
    tok = mint(key, issuer=admin.DEMO_ISSUER, subject=pid, now=gw.parts.clock())
    with gw.client("public-portal") as c:
        cor = c.file_correction(tok, dataset="population.basic", field="household_address",
                                statement="户籍地址应为威州镇岷江路12号")  # fmt: skip
    return {"share": share.id, "open": opened.id, "correction": cor.id}


def _items(gw: Harness, caller: str, **kw) -> dict[str, tuple]:
    with gw.client(caller) as c:
        r = c.deadlines(**kw)
    return {
        i.id: (i.kind, i.dataset, i.provider, i.received_on, i.due_date, i.working_days,
               i.overdue, i.working_days_left, i.overdue_working_days)
        for i in r.items
    }  # fmt: skip


@pytest.mark.requirement("R3", "R6", "R8")
def test_the_coordinator_sees_every_open_item_with_working_days_left(
    gw: Harness, filed: dict[str, str]
) -> None:
    items = _items(gw, "root")
    assert items[filed["share"]] == (
        DeadlineItemKind.SHARE_APPLICATION, SA, "县民政局", "2026-06-01", "2026-06-10", 7, False, 8, 0
    )  # fmt: skip
    assert items[filed["open"]] == (
        DeadlineItemKind.OPEN_APPLICATION, "licence.business", "县行政审批局", "2026-06-01", "2026-06-23", 15, False, 16, 0
    )  # fmt: skip
    assert items[filed["correction"]] == (
        DeadlineItemKind.CORRECTION, "population.basic", "县公安局", "2026-06-01", "2026-06-08", 5, False, 6, 0
    )  # fmt: skip
    assert _items(gw, "root", overdue_only=True) == {}


def test_providers_see_only_their_own_datasets(gw: Harness, filed: dict[str, str]) -> None:
    assert set(_items(gw, "agency-civil")) == {filed["share"]}
    assert set(_items(gw, "agency-approval")) == {filed["open"]}
    assert set(_items(gw, "agency-police")) == {filed["correction"]}
    # The applicant (松潘县公安局) is named like the correction's provider (县公安局)
    # but is not bound to its provider id; its own application, which it does not
    # answer, is not in its report either.
    assert set(_items(gw, "agency-far")) == set()
    assert set(_items(gw, "root", dataset=SA)) == {filed["share"]}


@pytest.mark.requirement("R3", "R8")
def test_overdue_by_skips_weekends_and_the_dragon_boat_festival(
    gw: Harness, filed: dict[str, str]
) -> None:
    real = gw.parts.clock
    gw.parts.clock = shifted_clock(LATER)
    try:
        items = _items(gw, "root", overdue_only=True)
        # Share due 10 June: 11, 12, 15-18 and 22 June are working days past it (19 is a holiday).
        assert items[filed["share"]][6:] == (True, 0, 7)
        # Correction due 8 June: 9-12, 15-18 and 22 June.
        assert items[filed["correction"]][6:] == (True, 0, 9)
        assert filed["open"] not in items
        # The open application, due 23 June: today and tomorrow are left.
        assert _items(gw, "root")[filed["open"]][6:] == (False, 2, 0)
        with gw.client("root") as c:
            assert c.deadlines().as_of == "2026-06-22"
    finally:
        gw.parts.clock = real


def test_answered_items_leave_the_report(gw: Harness, filed: dict[str, str]) -> None:
    with gw.client("public-portal") as c:
        app = c.apply("licence.business", ["status"], purpose="证照状态查询服务",
                      scenario="核对证照", duration_days=30, use="public_service",
                      security_commitment_accepted=True, use_agreement_accepted=True)  # fmt: skip
    assert app.id in _items(gw, "agency-approval")
    with gw.client("agency-approval") as p:
        p.decide_application(
            app.id, approve=False, reason="数据正在治理中", legal_basis="第三十一条"
        )
    assert app.id not in _items(gw, "agency-approval")
    assert app.id not in _items(gw, "root")


def test_who_may_not_read_the_report_and_bad_filters(gw: Harness) -> None:
    for caller in ("public-portal", "counter-wenchuan"):
        with gw.client(caller) as c:
            expect_error(c.deadlines, DENIED, "PROVIDER_REQUIRED")
    with gw.client("root") as c:
        expect_error(
            lambda: c.deadlines(dataset="no.such"), INVALID, "UNKNOWN_DATASET", ["dataset"]
        )
    records = [r for r in gw.audit_records() if r["action"] == "deadlines.read"]
    assert {r["outcome"] for r in records} >= {"OK", "PERMISSION_DENIED", "INVALID_ARGUMENT"}
    assert all(
        r["purpose"] == "deadline_assessment"  # the registered code of 办理时限考核
        for r in records
        if r["outcome"] != "INVALID_ARGUMENT"
    )


def test_cli_prints_json_csv_and_a_table(gw: Harness, filed: dict[str, str]) -> None:
    def govgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", "--target", gw.target,
             "--api-key", gw.keys["root"], "access", "deadlines", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    out = govgw("--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["as_of"] == "2026-06-01"
    share = next(i for i in doc["items"] if i["id"] == filed["share"])
    assert share == {
        "id": filed["share"], "kind": "share_application", "dataset": SA, "provider": "县民政局",
        "received_on": "2026-06-01", "due_date": "2026-06-10", "working_days": 7,
        "extended": False, "overdue": False, "working_days_left": 8, "overdue_working_days": 0,
    }  # fmt: skip
    out = govgw("--csv", "--dataset", "population.basic")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["id"], r["kind"], r["overdue"], r["working_days_left"]) for r in rows] == [
        (filed["correction"], "correction", "false", "6")
    ]
    out = govgw("--overdue")
    assert out.returncode == 0 and "0 overdue" in out.stdout
    out = govgw("--dataset", "no.such")
    assert out.returncode == 1 and "UNKNOWN_DATASET" in out.stderr
