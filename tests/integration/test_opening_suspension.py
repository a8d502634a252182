"""Suspending a whole dataset's opening on a security risk (撤回, R9) end to end.

The provider (汶川县市场监督管理局 provides legal_entity.basic, opened
unconditionally) suspends the opening: the public's very next call is denied
OPENING_SUSPENDED by the policy, agencies and counters keep their share
access; then the opening is withdrawn (OPENING_WITHDRAWN) and reopened after
reprocessing. A suspension written by another process (another worker, the
CLI) is honoured on this server's next call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from clients.sdk import GovgwClient
from clients.sdk.types import OpeningSuspensionStatus
from gateway import admin
from gateway.access.opening import OpeningSuspensionStore
from gateway.app import attach, build_parts
from gateway.callers import Caller
from gateway.config import ServeConfig
from gateway.server import GatewayServer
from tests.support import Harness, expect_error, make_data_dir, shifted_clock

TODAY = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
DS = "legal_entity.basic"
PURPOSE = "核实交易对象"
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
FAILED = grpc.StatusCode.FAILED_PRECONDITION
RISK = "发现批量爬取法定代表人信息的安全风险"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("opening")
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    for cid, kind, dept, providers in (
        ("agency-amr", "agency", "汶川县市场监督管理局", ("county.market-regulation",)),
        ("agency-police", "agency", "汶川县公安局", ("county.public-security",)),
        ("root", "admin", "州大数据局", ()),
    ):
        keys[cid] = admin.callers_add(data_dir, cid, kind, dept, "513221", provider_ids=providers)[
            "api_key"
        ]
    # As `govgw serve` builds it (limits, oracle, replay protection), on a fixed date.
    cfg = ServeConfig(data_dir=data_dir, listen="127.0.0.1:0", grace_s=1, sweep_interval_s=0)
    parts = attach(build_parts(cfg), cfg)
    parts.clock = parts.audit.clock = shifted_clock(TODAY)
    server = GatewayServer(cfg, parts)
    server.start()
    h = Harness(data_dir, cfg, parts, server, keys, demo)
    yield h
    h.stop()


def _public_answer(c: GovgwClient, key: str) -> str:
    try:
        c.lookup(DS, key, purpose=PURPOSE)
    except Exception as e:
        return getattr(e, "reason", type(e).__name__)
    return "OK"


@pytest.mark.requirement("R9")
def test_suspend_withdraw_reprocess_reopen(gw: Harness) -> None:
    ent = gw.demo["active_entity"]["uscc"]
    public, amr = gw.client("public-portal"), gw.client("agency-amr")
    share_callers = [gw.client("agency-civil"), gw.client("counter-wenchuan")]
    assert _public_answer(public, ent) == "OK"

    s = amr.suspend_opening(DS, reason=RISK)
    assert (s.dataset, s.provider, s.status, s.reason) == (
        DS,
        "县市场监督管理局",
        OpeningSuspensionStatus.SUSPENDED,
        RISK,
    )
    # The very next public call: denied, and told why (it is about the dataset).
    e = expect_error(lambda: public.lookup(DS, ent, purpose=PURPOSE), DENIED, "OPENING_SUSPENDED")
    assert e.metadata["dataset"] == DS and RISK not in str(e)
    expect_error(
        lambda: public.verify_attributes(ent, [("entity_active", [])], purpose=PURPOSE),
        DENIED,
        "OPENING_SUSPENDED",
    )
    # Sharing is untouched.
    for c in share_callers:
        assert c.lookup(DS, ent, purpose=PURPOSE).records
    expect_error(
        lambda: amr.suspend_opening(DS, reason="再次暂停"),
        grpc.StatusCode.ALREADY_EXISTS,
        "SUSPENSION_IN_FORCE",
    )

    w = amr.withdraw_opening(s.id, reason="确认风险，撤回开放，待重新脱敏")
    assert w.status is OpeningSuspensionStatus.WITHDRAWN
    expect_error(lambda: public.lookup(DS, ent, purpose=PURPOSE), DENIED, "OPENING_WITHDRAWN")
    expect_error(lambda: amr.withdraw_opening(s.id, reason="again"), FAILED, "SUSPENSION_STATUS")

    r = amr.reopen_opening(s.id, reason="法定代表人字段已加强脱敏", reprocessed=True)
    assert (r.status, r.reprocessed) == (OpeningSuspensionStatus.REOPENED, True)
    assert [h.event for h in r.history] == ["suspended", "withdrawn", "reopened"]
    assert {h.by for h in r.history} == {"agency-amr"}
    assert _public_answer(public, ent) == "OK"
    expect_error(lambda: amr.reopen_opening(s.id, reason="x"), FAILED, "SUSPENSION_STATUS")

    # Every transition audited with the suspension id, never the reason's text.
    transitions = [
        r["details"]["transition"]
        for r in gw.audit_records()
        if r.get("details", {}).get("suspension_id") == s.id
    ]
    assert transitions == ["suspended", "withdrawn", "reopened"]
    assert RISK not in gw.audit_text()


@pytest.mark.requirement("R9")
def test_an_administrator_may_suspend_and_reopen_at_once(gw: Harness) -> None:
    ent = gw.demo["active_entity"]["uscc"]
    root, public = gw.client("root"), gw.client("public-portal")
    s = root.suspend_opening(DS, reason=RISK)
    assert _public_answer(public, ent) == "OPENING_SUSPENDED"
    assert s.id in {x.id for x in gw.client("agency-amr").list_opening_suspensions()}
    assert s.id in {x.id for x in root.list_opening_suspensions(status="suspended")}
    r = root.reopen_opening(s.id, reason="风险排除")
    assert (r.status, r.reprocessed) == (OpeningSuspensionStatus.REOPENED, False)
    assert _public_answer(public, ent) == "OK"


@pytest.mark.requirement("R9")
def test_a_suspension_written_by_another_process_counts_on_the_next_call(gw: Harness) -> None:
    ent = gw.demo["active_entity"]["uscc"]
    public = gw.client("public-portal")
    assert _public_answer(public, ent) == "OK"
    # Another worker's store (its own instance on the same file).
    other = OpeningSuspensionStore(gw.config.layout.opening_suspensions, gw.parts.catalog)
    officer = Caller(
        "agency-amr",
        "agency",
        "汶川县市场监督管理局",
        "513221",
        provider_ids=("county.market-regulation",),
    )
    s = other.suspend(officer, DS, RISK, TODAY)
    assert _public_answer(public, ent) == "OPENING_SUSPENDED"
    other.reopen(officer, s["id"], "风险排除", TODAY, reprocessed=False)
    assert _public_answer(public, ent) == "OK"


def test_bad_suspensions_get_precise_errors(gw: Harness) -> None:
    amr, police, civil = (
        gw.client("agency-amr"),
        gw.client("agency-police"),
        gw.client("agency-civil"),
    )
    for c in (gw.client("public-portal"), gw.client("counter-wenchuan")):
        expect_error(lambda c=c: c.suspend_opening(DS, reason=RISK), DENIED, "PROVIDER_REQUIRED")
        expect_error(c.list_opening_suspensions, DENIED, "PROVIDER_REQUIRED")
    # An agency that does not provide the dataset.
    e = expect_error(lambda: civil.suspend_opening(DS, reason=RISK), DENIED, "PROVIDER_REQUIRED")
    assert e.metadata["dataset"] == DS
    expect_error(
        lambda: amr.suspend_opening("", reason=""),
        INVALID,
        "DATASET_MISSING",
        ["dataset", "reason"],
    )
    expect_error(
        lambda: amr.suspend_opening("no.such", reason=RISK), INVALID, "UNKNOWN_DATASET", ["dataset"]
    )
    e = expect_error(
        lambda: amr.suspend_opening(DS, reason="联系人 13800138000"),
        INVALID,
        "REASON_CONTAINS_PERSONAL_DATA",
        ["reason"],
    )
    assert "13800138000" not in str(e)
    # population.basic is not opened at all (open class none).
    expect_error(
        lambda: police.suspend_opening("population.basic", reason=RISK), FAILED, "DATASET_NOT_OPEN"
    )
    expect_error(
        lambda: amr.withdraw_opening("", reason=""),
        INVALID,
        "SUSPENSION_ID_MISSING",
        ["suspension_id", "reason"],
    )
    expect_error(
        lambda: amr.reopen_opening("os-0000", reason="x"),
        grpc.StatusCode.NOT_FOUND,
        "SUSPENSION_NOT_FOUND",
    )
    s = amr.suspend_opening(DS, reason=RISK)
    try:
        # Another provider's suspension is as absent as one that does not exist.
        expect_error(
            lambda: police.withdraw_opening(s.id, reason="x"),
            grpc.StatusCode.NOT_FOUND,
            "SUSPENSION_NOT_FOUND",
        )
        assert police.list_opening_suspensions().items == ()
        expect_error(
            lambda: amr.list_opening_suspensions(dataset="no.such"),
            INVALID,
            "UNKNOWN_DATASET",
            ["dataset"],
        )
        with pytest.raises(ValueError):
            amr.list_opening_suspensions(status="paused")
    finally:
        amr.reopen_opening(s.id, reason="测试结束")


def test_idempotent_suspension_is_not_repeated(gw: Harness) -> None:
    from govgw.v1 import opening_pb2

    amr = gw.client("agency-amr")
    md = (*amr._metadata, ("idempotency-key", "suspension-000000000001"))
    req = opening_pb2.SuspendOpeningRequest(dataset=DS, reason=RISK)
    first = amr.stub("opening").SuspendOpening(req, metadata=md, timeout=10).suspension
    again = amr.stub("opening").SuspendOpening(req, metadata=md, timeout=10).suspension
    assert first.id == again.id
    assert len(amr.list_opening_suspensions(status="suspended")) == 1
    amr.reopen_opening(first.id, reason="测试结束")


@pytest.mark.requirement("R9")
def test_cli_suspends_lists_withdraws_and_reopens(gw: Harness) -> None:
    def govgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", "--target", gw.target,
             "--api-key", gw.keys["agency-amr"], "subjects", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    out = govgw("suspend-opening", DS, "--reason", RISK, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["dataset"], doc["status"], doc["reprocessed"]) == (DS, "SUSPENDED", False)
    out = govgw("openings", "--status", "suspended")
    assert out.returncode == 0 and doc["id"] in out.stdout
    out = govgw("withdraw-opening", doc["id"], "--reason", "确认风险")
    assert out.returncode == 0 and "withdrawn" in out.stdout
    out = govgw("reopen", doc["id"], "--reason", "已重新脱敏", "--reprocessed", "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout)["status"] == "REOPENED"
    out = govgw("reopen", doc["id"], "--reason", "again")
    assert out.returncode == 1 and "SUSPENSION_STATUS" in out.stderr
