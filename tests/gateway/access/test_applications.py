"""Applications and the grants they create, on a real catalog and grant store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from gateway.access.applications import (
    APPROVED,
    DENIED,
    ApplicationInput,
    ApplicationStore,
    is_provider,
    provides,
)
from gateway.access.sweep import SWEEP_REASON, add_months, last_uses, sweep_unused, unused
from gateway.audit import AuditLog
from gateway.callers import Caller
from gateway.catalog import load
from gateway.errors import GovgwError
from gateway.grants import GrantStore

NOW = datetime(2026, 2, 12, 2, 0, tzinfo=UTC)  # Thursday before Spring Festival
APPLICANT = Caller("agency-far", "agency", "松潘县公安局", "513224")
PROVIDER = Caller(
    "agency-civil", "agency", "汶川县民政局", "513221", provider_ids=("county.civil-affairs",)
)
PUBLIC = Caller("public-portal", "public", "公众", "513200")
LICENCE_PROVIDER = Caller(
    "agency-approval",
    "agency",
    "汶川县行政审批局",
    "513221",
    provider_ids=("county.administrative-approval",),
)
COUNTER = Caller("counter-wenchuan", "counter", "汶川县政务服务中心", "513221")
DS = "social_assistance.recipient"


@pytest.fixture
def store(tmp_path: Path) -> ApplicationStore:
    return ApplicationStore(
        tmp_path / "applications.db", GrantStore(tmp_path / "grants.json"), load()
    )


def share(**kw) -> ApplicationInput:
    base = dict(
        dataset=DS,
        fields=("name", "assistance_type"),
        purpose="社会救助对象核查",
        scenario="办理救助资格复核时核对救助类型",
        duration_days=90,
    )
    return ApplicationInput(**{**base, **kw})


def open_app(**kw) -> ApplicationInput:
    base = dict(
        dataset="licence.business",
        fields=("licence_type", "status"),
        purpose="营商环境研究",
        scenario="统计各类证照的有效状态",
        duration_days=30,
        use="research",
        public_interest=True,
        security_commitment_accepted=True,
        use_agreement_accepted=True,
    )
    return ApplicationInput(**{**base, **kw})


def error(fn) -> GovgwError:
    with pytest.raises(GovgwError) as e:
        fn()
    return e.value


@pytest.mark.requirement("R3")
def test_apply_approve_narrow_creates_grant(store: ApplicationStore) -> None:
    app = store.apply(APPLICANT, share(), NOW)
    assert (app["kind"], app["status"], app["due"]) == ("share", "pending", "2026-02-28")  # aba: 7
    assert not app["overdue"]
    decided = store.decide(
        PROVIDER, app["id"], approve=True, fields=["assistance_type"], reason="", legal_basis="",
        now=NOW + timedelta(days=1),
    )  # fmt: skip
    assert decided["status"] == APPROVED
    grant = store.grants.get(decided["grant_id"])
    assert grant is not None
    assert (grant["caller"], grant["dataset"], grant["fields"]) == (
        "agency-far", DS, ["assistance_type"],
    )  # fmt: skip
    assert grant["purpose"] == "social_assistance_review" and grant["application_id"] == app["id"]
    assert grant["expires_at"].startswith("2026-05-14")  # decided 13 Feb + 90 days
    assert [h["event"] for h in store.visible(APPLICANT, app["id"], NOW)["history"]] == [
        "applied", "approved",
    ]  # fmt: skip


@pytest.mark.requirement("R3")
def test_deny_needs_reason_and_legal_basis(store: ApplicationStore) -> None:
    app = store.apply(APPLICANT, share(), NOW)
    e = error(lambda: store.decide(PROVIDER, app["id"], approve=False, fields=[], reason="",
                                   legal_basis="", now=NOW))  # fmt: skip
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in e.violations] == ["reason", "legal_basis"]
    d = store.decide(PROVIDER, app["id"], approve=False, fields=[], reason="与履职无关",
                     legal_basis="营口办法第二十条", now=NOW)  # fmt: skip
    assert d["status"] == DENIED and d["grant_id"] == "" and store.grants.list() == []
    e = error(lambda: store.decide(PROVIDER, app["id"], approve=True, fields=[], reason="",
                                   legal_basis="", now=NOW))  # fmt: skip
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "APPLICATION_DECIDED")


@pytest.mark.requirement("R3")
def test_only_the_provider_decides_and_only_narrows(store: ApplicationStore) -> None:
    app = store.apply(APPLICANT, share(), NOW)
    e = error(lambda: store.decide(APPLICANT, app["id"], approve=True, fields=[], reason="",
                                   legal_basis="", now=NOW))  # fmt: skip
    assert (e.code, e.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PROVIDER_REQUIRED")
    e = error(lambda: store.decide(LICENCE_PROVIDER, app["id"], approve=True, fields=[],
                                   reason="", legal_basis="", now=NOW))  # fmt: skip
    assert (e.code, e.reason) == (grpc.StatusCode.NOT_FOUND, "APPLICATION_NOT_FOUND")
    e = error(lambda: store.decide(PROVIDER, app["id"], approve=True, fields=["monthly_amount"],
                                   reason="", legal_basis="", now=NOW))  # fmt: skip
    assert e.reason == "FIELD_NOT_REQUESTED" and [v.field for v in e.violations] == ["fields[0]"]


def test_a_provider_is_named_by_its_id_never_by_a_name_it_ends_with(
    store: ApplicationStore,
) -> None:
    catalog = load()
    assert catalog.get(DS).provider == "县民政局"  # the display name a lookalike ends with
    lookalike = Caller("agency-lookalike", "agency", "某县民政局", "513221")
    unbound = Caller("agency-civil-2", "agency", "汶川县民政局", "513221")  # right name, no id
    counter = Caller("counter-x", "counter", "汶川县民政局", "513221",
                     provider_ids=("county.civil-affairs",))  # fmt: skip
    renamed = Caller("agency-mz", "agency", "民政事务中心", "513221",
                     provider_ids=("county.civil-affairs",))  # fmt: skip
    for caller in (lookalike, unbound, counter):
        assert not provides(catalog, caller, DS) and not is_provider(caller, catalog.get(DS))
    assert provides(catalog, PROVIDER, DS) and provides(catalog, renamed, DS)
    assert not provides(catalog, PROVIDER, "population.basic")  # bound to one provider only

    app = store.apply(APPLICANT, share(), NOW)
    for caller in (lookalike, unbound):
        assert store.list(caller, NOW) == []
        e = error(lambda c=caller: store.decide(c, app["id"], approve=True, fields=[],
                                                reason="", legal_basis="", now=NOW))  # fmt: skip
        assert (e.code, e.reason) == (grpc.StatusCode.NOT_FOUND, "APPLICATION_NOT_FOUND")
    # The caller bound by id decides, whatever its department is called.
    decided = store.decide(renamed, app["id"], approve=True, fields=[], reason="",
                           legal_basis="", now=NOW)  # fmt: skip
    assert decided["status"] == APPROVED
    for caller in (lookalike, unbound):
        e = error(lambda c=caller: store.change_grant(c, decided["grant_id"], "suspended",
                                                      "暂停", NOW))  # fmt: skip
        # Another provider's grant is as absent as one that does not exist.
        assert (e.code, e.reason) == (grpc.StatusCode.NOT_FOUND, "GRANT_NOT_FOUND")


@pytest.mark.requirement("R3")
def test_application_rules(store: ApplicationStore) -> None:
    e = error(lambda: store.apply(APPLICANT, share(dataset="", fields=(), purpose="", scenario="",
                                                   duration_days=0), NOW))  # fmt: skip
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in e.violations] == [
        "dataset", "fields", "purpose", "scenario", "duration_days",
    ]  # fmt: skip
    e = error(lambda: store.apply(APPLICANT, share(fields=("name", "shoe_size")), NOW))
    assert [(v.field, v.reason) for v in e.violations] == [("fields[1]", "UNKNOWN_FIELD")]
    e = error(lambda: store.apply(APPLICANT, share(scenario="核对 513221198001011234"), NOW))
    assert e.violations[0].reason == "SCENARIO_CONTAINS_PERSONAL_DATA"
    assert "513221198001011234" not in str(e)
    e = error(
        lambda: store.apply(APPLICANT, share(dataset="population.basic", fields=("name",)), NOW)
    )
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "APPLICATION_NOT_NEEDED")
    e = error(
        lambda: store.apply(PUBLIC, open_app(dataset="population.basic", fields=("name",)), NOW)
    )
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DATASET_NOT_OPEN")
    e = error(lambda: store.apply(COUNTER, share(), NOW))
    assert (e.code, e.reason) == (grpc.StatusCode.PERMISSION_DENIED, "APPLICANT_KIND_NOT_ALLOWED")
    store.apply(APPLICANT, share(), NOW)
    e = error(lambda: store.apply(APPLICANT, share(), NOW))
    assert (e.code, e.reason) == (grpc.StatusCode.ALREADY_EXISTS, "APPLICATION_PENDING")


@pytest.mark.requirement("R6")
def test_open_application_rules(store: ApplicationStore) -> None:
    e = error(lambda: store.apply(PUBLIC, open_app(public_interest=False,
        security_commitment_accepted=False, use_agreement_accepted=False), NOW))  # fmt: skip
    assert [v.reason for v in e.violations] == [
        "RESEARCH_NOT_PUBLIC_INTEREST", "SECURITY_COMMITMENT_REQUIRED", "USE_AGREEMENT_REQUIRED",
    ]  # fmt: skip
    e = error(lambda: store.apply(PUBLIC, open_app(use="commercial"), NOW))
    assert [v.reason for v in e.violations] == ["COMPETITIVE_AUTHORIZATION_MISSING"]
    e = error(lambda: store.apply(PUBLIC, open_app(use="sale"), NOW))
    assert [v.reason for v in e.violations] == ["USE_INVALID"]
    app = store.apply(
        PUBLIC, open_app(use="commercial", competitive_authorization="JZPZ-2026-003"), NOW
    )
    assert app["kind"] == "open" and app["due"] == "2026-03-11"  # aba: 15 working days
    assert app["security_commitment_accepted"] and app["use_agreement_accepted"]
    assert app["competitive_authorization"] == "JZPZ-2026-003"


@pytest.mark.requirement("R3")
def test_list_scopes_and_overdue(store: ApplicationStore) -> None:
    mine = store.apply(APPLICANT, share(), NOW)
    theirs = store.apply(PUBLIC, open_app(), NOW)
    assert [a["id"] for a in store.list(APPLICANT, NOW)] == [mine["id"]]
    assert [a["id"] for a in store.list(PROVIDER, NOW)] == [mine["id"]]
    assert [a["id"] for a in store.list(LICENCE_PROVIDER, NOW)] == [theirs["id"]]
    admin = Caller("root", "admin", "大数据局", "513200")
    assert len(store.list(admin, NOW)) == 2
    later = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # 08:00 on 1 Mar in Beijing; due 28 Feb
    assert [a["id"] for a in store.list(admin, later, overdue_only=True)] == [mine["id"]]
    e = error(lambda: store.visible(LICENCE_PROVIDER, mine["id"], NOW))
    assert e.reason == "APPLICATION_NOT_FOUND"


@pytest.mark.requirement("R5")
def test_provider_suspends_reinstates_and_ends_a_grant(store: ApplicationStore) -> None:
    app = store.apply(APPLICANT, share(), NOW)
    gid = store.decide(PROVIDER, app["id"], approve=True, fields=[], reason="", legal_basis="",
                       now=NOW)["grant_id"]  # fmt: skip
    e = error(lambda: store.change_grant(APPLICANT, gid, "suspended", "自行暂停", NOW))
    assert e.reason == "PROVIDER_REQUIRED"
    assert (
        store.change_grant(PROVIDER, gid, "suspended", "超范围使用", NOW)["status"] == "suspended"
    )
    assert store.change_grant(PROVIDER, gid, "active", "整改完成", NOW)["status"] == "active"
    assert store.change_grant(PROVIDER, gid, "revoked", "再次违规", NOW)["status"] == "revoked"
    e = error(lambda: store.change_grant(PROVIDER, gid, "active", "恢复", NOW))
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "GRANT_REVOKED")
    e = error(lambda: store.change_grant(PROVIDER, "g-nope", "revoked", "x", NOW))
    assert (e.code, e.reason) == (grpc.StatusCode.NOT_FOUND, "GRANT_NOT_FOUND")
    events = [h["event"] for h in store.visible(PROVIDER, app["id"], NOW)["history"]]
    assert events == ["applied", "approved", "grant_suspended", "grant_active", "grant_revoked"]


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(datetime(2025, 11, 30, tzinfo=UTC), 3) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 10, 15, tzinfo=UTC), 3) == datetime(2027, 1, 15, tzinfo=UTC)


@pytest.mark.requirement("R5")
def test_sweep_revokes_grants_unused_for_three_months(tmp_path: Path) -> None:
    grants = GrantStore(tmp_path / "grants.json")
    used = grants.add("agency-far", DS, ["name"], "核查", "2027-12-31T00:00:00Z")
    idle = grants.add("agency-far", DS, ["name"], "统计", "2027-12-31T00:00:00Z")
    created = datetime.fromisoformat(used["created_at"].replace("Z", "+00:00"))
    audit = tmp_path / "audit.log"
    with AuditLog(audit) as log:
        log.append({"action": "lookup", "outcome": "OK", "grants": [used["id"]], "subject": ""})
        log.append({"action": "lookup", "outcome": "PERMISSION_DENIED", "grants": [idle["id"]],
                    "subject": ""})  # fmt: skip
    last = last_uses([audit])  # the refused call is no use
    assert set(last) == {used["id"]}
    # Used two months after creation: three months later it is still in use; the idle one is not.
    at = add_months(created, 3) + timedelta(minutes=1)
    assert unused(grants.list(), {used["id"]: created + timedelta(days=60)}, at) == [idle]
    assert sweep_unused(grants, [audit], created + timedelta(days=80)) == []
    revoked = sweep_unused(grants, [audit], add_months(last[used["id"]], 3) + timedelta(seconds=1))
    assert sorted(g["id"] for g in revoked) == sorted([used["id"], idle["id"]])
    assert {g["revoke_reason"] for g in grants.list()} == {SWEEP_REASON}
