"""AccessService end to end: apply, decide, use, suspend, sweep; every transition audited."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from clients.sdk.types import GrantStatus
from gateway import admin
from tests.support import (
    Harness,
    eventually,
    expect_error,
    make_data_dir,
    shifted_clock,
    start,
)

DS = "social_assistance.recipient"
PURPOSE = "最低生活保障资格复核"
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
# Deadlines are counted on the holiday calendar, which covers 2004-2026 only:
# these tests run on a fixed Monday in 2026, whatever today is.
TODAY = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("access")
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    for cid, kind, dept, providers in (
        ("agency-approval", "agency", "汶川县行政审批局", ("county.administrative-approval",)),
        ("root", "admin", "州大数据局", ()),
        # Its name ends with the catalog's 县民政局, but it is bound to no provider id.
        ("agency-lookalike", "agency", "某县民政局", ()),
    ):
        keys[cid] = admin.callers_add(data_dir, cid, kind, dept, "513221", provider_ids=providers)[
            "api_key"
        ]
    h = start(data_dir, keys, demo, clock=shifted_clock(TODAY), sweep_interval_s=0)
    yield h
    h.stop()


def apply_share(h: Harness, **kw):
    args = dict(
        purpose=PURPOSE,
        scenario="复核低保对象救助类型",
        duration_days=90,
    )
    with h.client("agency-far") as c:
        return c.apply(DS, ["name", "assistance_type"], **{**args, **kw})


@pytest.mark.requirement("R3", "R5")
def test_apply_approve_use_suspend_reinstate_revoke(gw: Harness) -> None:
    subject = gw.demo["assistance_recipient"]["id_number"]
    far, provider = gw.client("agency-far"), gw.client("agency-civil")
    expect_error(lambda: far.lookup(DS, subject, purpose=PURPOSE), DENIED, "GRANT_REQUIRED")
    app = apply_share(gw)
    assert (app.kind, app.status, app.working_days, app.jurisdiction) == (
        "share",
        "pending",
        7,
        "aba",
    )
    assert [a.id for a in provider.list_applications(status="pending")] == [app.id]
    # Approval narrows the fields; the grant works on the very next call.
    r = provider.decide_application(app.id, approve=True, fields=["assistance_type"])
    assert r.application.status == "approved" and list(r.grant.fields) == ["assistance_type"]
    rec = far.lookup(DS, subject, purpose=PURPOSE)
    assert set(rec.records[0]) == {"assistance_type"}
    expect_error(
        lambda: far.lookup(DS, subject, ["name"], purpose=PURPOSE), DENIED, "FIELD_NOT_ALLOWED"
    )
    g = provider.change_grant(r.grant.id, "suspended", reason="超出申请场景使用")
    assert g.status is GrantStatus.SUSPENDED and g.request_id.startswith("req_")
    expect_error(lambda: far.lookup(DS, subject, purpose=PURPOSE), DENIED, "GRANT_REQUIRED")
    provider.change_grant(r.grant.id, "active", reason="整改完毕")
    assert far.lookup(DS, subject, purpose=PURPOSE).records
    expect_error(
        lambda: far.change_grant(r.grant.id, "revoked", reason="自行终止"), DENIED,
        "PROVIDER_REQUIRED",
    )  # fmt: skip
    provider.change_grant(r.grant.id, "revoked", reason="停止使用")
    expect_error(lambda: far.lookup(DS, subject, purpose=PURPOSE), DENIED, "GRANT_REQUIRED")
    events = [e.event for e in far.get_application(app.id).history]
    assert events == [
        "applied", "approved", "grant_suspended", "grant_active", "grant_revoked",
    ]  # fmt: skip
    # Every transition is in the audit trail, with its ids, and no subject key.
    recs = [x for x in gw.audit_records() if x["action"].startswith("access.")]
    transitions = [x["details"]["transition"] for x in recs if x.get("details")]
    assert transitions == [
        "applied", "approved", "grant_suspended", "grant_active", "grant_revoked",
    ]  # fmt: skip
    assert all(x["dataset"] == DS for x in recs if x.get("details"))
    assert subject not in gw.audit_text()


@pytest.mark.requirement("R3", "R6")
def test_refusals_are_precise(gw: Harness) -> None:
    with gw.client("counter-wenchuan") as c:
        expect_error(
            lambda: c.apply(DS, ["name"], purpose=PURPOSE, scenario="核对", duration_days=5),
            DENIED,
            "APPLICANT_KIND_NOT_ALLOWED",
        )
    with gw.client("agency-far") as c:
        expect_error(
            lambda: c.apply("", [], purpose="", scenario="", duration_days=0),
            INVALID,
            "DATASET_MISSING",
            ["dataset", "fields", "purpose", "scenario", "duration_days"],
        )
        e = expect_error(
            lambda: c.apply(DS, ["name"], purpose=PURPOSE, scenario="核对 13800138000",
                            duration_days=5),
            INVALID, "SCENARIO_CONTAINS_PERSONAL_DATA", ["scenario"],
        )  # fmt: skip
        assert "13800138000" not in str(e)
        expect_error(
            lambda: c.apply("population.basic", ["name"], purpose=PURPOSE, scenario="核对",
                            duration_days=5),
            grpc.StatusCode.FAILED_PRECONDITION, "APPLICATION_NOT_NEEDED",
        )  # fmt: skip
        app = apply_share(gw, purpose="临时救助审核")
        expect_error(
            lambda: c.decide_application(app.id, approve=True), DENIED, "PROVIDER_REQUIRED"
        )
        expect_error(
            lambda: c.get_application("app-0000000000000000"),
            grpc.StatusCode.NOT_FOUND,
            "APPLICATION_NOT_FOUND",
        )
    with gw.client("agency-civil") as p:
        expect_error(
            lambda: p.decide_application(app.id, approve=False),
            INVALID,
            "REASON_MISSING",
            ["reason", "legal_basis"],
        )
        d = p.decide_application(
            app.id, approve=False, reason="申请事项与履职无关", legal_basis="阿坝州办法第二十七条"
        )
        assert d.application.status == "denied" and d.grant is None
        assert d.application.decision.legal_basis == "阿坝州办法第二十七条"
    with gw.client("public-portal") as c:
        expect_error(
            lambda: c.apply("licence.business", ["status"], purpose="研究", scenario="统计",
                            duration_days=30, use="research"),
            INVALID, "RESEARCH_NOT_PUBLIC_INTEREST",
            ["public_interest", "security_commitment_accepted", "use_agreement_accepted"],
        )  # fmt: skip


@pytest.mark.requirement("R5", "R6")
def test_open_application_overdue_and_sweep(gw: Harness) -> None:
    with gw.client("public-portal") as c:
        app = c.apply(
            "licence.business", ["licence_type", "status"], purpose="营商环境研究",
            scenario="统计证照状态", duration_days=30, use="research", public_interest=True,
            security_commitment_accepted=True, use_agreement_accepted=True,
        )  # fmt: skip
    assert (app.kind, app.working_days) == ("open", 15)
    real_clock = gw.parts.clock
    try:
        late = real_clock() + timedelta(days=40)
        gw.parts.clock = lambda: late
        with gw.client("agency-approval") as p:
            overdue = p.list_applications(overdue_only=True)
            assert [a.id for a in overdue] == [app.id]
            grant = p.decide_application(app.id, approve=True).grant
        with gw.client("agency-far") as c:
            expect_error(c.sweep_unused_grants, DENIED, "ADMIN_ROLE_REQUIRED")
        # Four months on, the never-used grant is revoked by the sweep.
        gw.parts.clock = lambda: late + timedelta(days=125)
        with gw.client("root") as r:
            revoked = r.sweep_unused_grants()
        assert grant.id in {g.id for g in revoked}
        assert gw.parts.decider.grants.get(grant.id)["revoke_reason"] == "UNUSED_3_MONTHS"
    finally:
        gw.parts.clock = real_clock
    with gw.client("public-portal") as c:
        assert c.get_application(app.id).history[-1].event == "grant_revoked"


def test_cli_lists_and_decides(gw: Harness) -> None:
    app = apply_share(gw, purpose="特困人员供养审核")

    def govgw(caller: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", "--target", gw.target,
             "--api-key", gw.keys[caller], "access", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    listed = govgw("agency-civil", "list", "--status", "pending", "--json")
    assert listed.returncode == 0, listed.stderr
    assert app.id in {a["id"] for a in json.loads(listed.stdout)["items"]}
    bad = govgw("agency-civil", "decide", app.id, "--deny", "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["error"]["code"] == "INVALID_ARGUMENT"
    ok = govgw("agency-civil", "decide", app.id, "--approve", "--fields", "name")
    assert ok.returncode == 0 and "approved" in ok.stdout
    hist = govgw("agency-far", "history", app.id)
    assert "approved" in hist.stdout and hist.returncode == 0


def test_audit_chain_still_verifies(gw: Harness) -> None:
    assert admin.audit_verify(Path(gw.data_dir))["ok"]


@pytest.mark.requirement("R5", "R17")
def test_provider_usage_report_rpc_and_cli(gw: Harness) -> None:
    subject = gw.demo["assistance_recipient"]["id_number"]
    with gw.client("agency-far") as far:
        expect_error(lambda: far.lookup(DS, subject, purpose="用途甲"), DENIED, "GRANT_REQUIRED")
        # Only the provider (or an administrator) sees the report.
        expect_error(lambda: far.usage_report(DS), DENIED, "PROVIDER_REQUIRED")
    with gw.client("public-portal") as pub:
        expect_error(lambda: pub.usage_report(DS), DENIED, "PROVIDER_REQUIRED")
    with gw.client("agency-civil") as p:
        expect_error(lambda: p.usage_report("no.such"), INVALID, "UNKNOWN_DATASET", ["dataset"])
        now = gw.parts.clock()
        expect_error(
            lambda: p.usage_report(DS, since=now, until=now - timedelta(days=1)),
            INVALID, "PERIOD_INVALID", ["since"],
        )  # fmt: skip
        r = p.usage_report(DS)
    denied = [
        row for row in r.rows
        if (row.caller, row.action, row.outcome, row.purpose)
        == ("agency-far", "lookup", "PERMISSION_DENIED", "other: 用途甲")
    ]  # fmt: skip
    assert len(denied) == 1 and denied[0].calls == 1 and denied[0].department == "松潘县公安局"
    assert r.calls == sum(row.calls for row in r.rows) > 1
    assert any(row.action == "access.apply" for row in r.rows)
    with gw.client("root") as root:
        assert root.usage_report(DS).calls >= r.calls
    out = subprocess.run(
        [sys.executable, "-m", "clients.cli", "--target", gw.target,
         "--api-key", gw.keys["agency-civil"], "access", "usage", "--dataset", DS, "--csv"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "caller,caller_kind,department,purpose,action,outcome,calls,subjects"
    assert "agency-far,agency,松潘县公安局,other: 用途甲,lookup,PERMISSION_DENIED,1,1" in lines
    js = subprocess.run(
        [sys.executable, "-m", "clients.cli", "--target", gw.target,
         "--api-key", gw.keys["agency-civil"], "access", "usage", "--dataset", DS, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    doc = json.loads(js.stdout)
    assert doc["dataset"] == DS and doc["calls"] >= r.calls
    assert all(isinstance(row["calls"], int) for row in doc["rows"])


def bind(gw: Harness, caller: str, *provider_ids: str) -> None:
    flags = [a for pid in provider_ids for a in ("--provider-id", pid)]
    out = subprocess.run(
        [sys.executable, "-m", "clients.cli", "callers", "bind", caller, *flags,
         "--data-dir", str(gw.data_dir), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["provider_ids"] == list(provider_ids)


def test_a_department_named_like_the_provider_is_not_the_provider(gw: Harness) -> None:
    app = apply_share(gw, purpose="临时救助资格核查")
    with gw.client("agency-lookalike") as look, gw.client("agency-civil") as civil:
        # 某县民政局 ends with 县民政局 (the catalog's provider name): nothing follows from it.
        expect_error(lambda: look.usage_report(DS), DENIED, "PROVIDER_REQUIRED")
        assert app.id not in [a.id for a in look.list_applications()]
        expect_error(
            lambda: look.decide_application(app.id, approve=False, reason="x", legal_basis="y"),
            grpc.StatusCode.NOT_FOUND,
            "APPLICATION_NOT_FOUND",
        )
        # The caller bound to the provider id is the provider.
        assert app.id in [a.id for a in civil.list_applications(status="pending")]
        assert civil.usage_report(DS).calls > 0
        # Binding is by id, from the CLI, and seen by the running server; so is unbinding.
        bind(gw, "agency-lookalike", "county.civil-affairs")
        eventually(lambda: look.usage_report(DS), within_s=1.0)
        bind(gw, "agency-lookalike")
        eventually(
            lambda: expect_error(lambda: look.usage_report(DS), DENIED, "PROVIDER_REQUIRED"),
            within_s=1.0,
        )
    log = gw.data_dir / "audit" / "audit-admin.log"
    bindings = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["action"], r["caller"], r["detail"]) for r in bindings] == [
        ("caller.providers", "agency-lookalike", "county.civil-affairs"),
        ("caller.providers", "agency-lookalike", ""),
    ]


@pytest.mark.requirement("R5")
def test_server_sweeps_unused_grants_periodically(tmp_path: Path) -> None:
    keys, demo = make_data_dir(tmp_path, persons=5, entities=2)
    grant = admin.grants_add(tmp_path, "agency-far", DS, ["name"], PURPOSE, "365d")
    h = start(tmp_path, keys, demo, sweep_interval_s=0.1)
    try:
        later = h.parts.clock() + timedelta(days=100)  # more than three months unused
        h.parts.clock = lambda: later
        store = h.parts.decider.grants

        def revoked() -> None:
            store.reload()
            assert store.get(grant["id"])["status"] == "revoked"

        eventually(revoked, within_s=5.0)
        assert store.get(grant["id"])["revoke_reason"] == "UNUSED_3_MONTHS"
    finally:
        h.stop()
    swept = [r for r in h.audit_records() if r["caller"] == "system:sweep"]
    assert [r["details"]["grant_id"] for r in swept] == [grant["id"]]
    assert admin.audit_verify(tmp_path)["ok"]
