"""EmergencyService end to end (R11): declare, widened access, end (explicit and by
time), sealing list, seal; bad inputs; every transition audited; the chain verifies."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from clients.sdk import GovgwClient
from clients.sdk.types import Emergency, EmergencyStatus
from gateway import admin
from gateway.access.emergency import EXPIRY_ACTOR
from tests.support import Harness, eventually, expect_error, make_data_dir, shifted_clock, start

DS = "social_assistance.recipient"
SCOPE = {DS: ["name", "assistance_type", "region_code"]}
PURPOSE = "地震受灾群众救助核查"
LEGAL_BASIS = "《中华人民共和国突发事件应对法》第四十五条；《阿坝州公共数据管理办法》第二十一条"
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
FAILED = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND
TODAY = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
EXTRA_CALLERS = (
    ("agency-rescue", "agency", "汶川县应急管理局"),
    ("root", "admin", "州大数据局"),
)


def setup(data_dir: Path, **config: Any) -> Harness:
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    for cid, kind, dept in EXTRA_CALLERS:
        keys[cid] = admin.callers_add(data_dir, cid, kind, dept, "513221")["api_key"]
    return start(data_dir, keys, demo, clock=shifted_clock(TODAY), sweep_interval_s=0, **config)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = setup(tmp_path_factory.mktemp("emergency"), emergency_interval_s=0)
    yield h
    h.stop()


def declare(c: GovgwClient, h: Harness, **kw: Any) -> Emergency:
    args: dict[str, Any] = dict(
        title="汶川县地震应急响应",
        legal_basis=LEGAL_BASIS,
        scope=SCOPE,
        agencies=["agency-rescue"],
        purpose=PURPOSE,
        ends_at=h.parts.clock() + timedelta(days=7),
    )
    return c.declare_emergency(**{**args, **kw})


@pytest.mark.requirement("R11")
def test_declare_widen_end_seal(gw: Harness) -> None:
    subject = gw.demo["assistance_recipient"]["id_number"]
    other = gw.demo["adult_resident"]["id_number"]
    rescue, far, root = gw.client("agency-rescue"), gw.client("agency-far"), gw.client("root")
    # Before the declaration: conditional share needs a grant.
    expect_error(lambda: rescue.lookup(DS, subject, purpose=PURPOSE), DENIED, "GRANT_REQUIRED")

    em = declare(root, gw)
    assert em.status is EmergencyStatus.ACTIVE and len(em.grant_ids) == 1
    assert [s.dataset for s in em.scope] == [DS] and list(em.agencies) == ["agency-rescue"]

    # The designated agency gets the scoped fields, masked per the catalog, at once.
    r = rescue.lookup(DS, subject, purpose=PURPOSE)
    rec = r.records[0]
    assert set(rec) == {"name", "assistance_type", "region_code"}
    assert rec["name"].treatment == "mask"
    assert rec["name"].value != gw.demo["assistance_recipient"]["name"]
    assert rec["name"].value[0] == gw.demo["assistance_recipient"]["name"][0]
    assert rec["assistance_type"].value == "最低生活保障"
    made = [r.request_id]
    # Fields outside the scope stay closed; that refused call was still made under it.
    e = expect_error(
        lambda: rescue.lookup(DS, subject, ["monthly_amount"], purpose=PURPOSE),
        DENIED,
        "FIELD_NOT_ALLOWED",
    )
    made.append(e.request_id)
    batch = list(rescue.batch_lookup(DS, [subject, other], purpose=PURPOSE))
    made.append(batch[0].request_id)
    # Only for the emergency's purpose, only for the designated agency.
    expect_error(lambda: rescue.lookup(DS, subject, purpose="其他用途"), DENIED, "GRANT_REQUIRED")
    expect_error(lambda: far.lookup(DS, subject, purpose=PURPOSE), DENIED, "GRANT_REQUIRED")

    # Who sees the emergency.
    assert [x.id for x in rescue.list_emergencies()] == [em.id]
    assert rescue.get_emergency(em.id).purpose == "disaster_relief"  # PURPOSE's code
    assert far.list_emergencies().items == ()
    expect_error(lambda: far.get_emergency(em.id), NOT_FOUND, "EMERGENCY_NOT_FOUND")
    with gw.client("counter-wenchuan") as counter:
        expect_error(counter.list_emergencies, DENIED, "AGENCY_OR_ADMIN_REQUIRED")
    expect_error(lambda: rescue.sealing_list(em.id), DENIED, "ADMIN_ROLE_REQUIRED")
    expect_error(lambda: rescue.end_emergency(em.id, reason="x"), DENIED, "ADMIN_ROLE_REQUIRED")
    expect_error(lambda: root.seal_emergency(em.id), FAILED, "EMERGENCY_ACTIVE")

    # The end: grants revoked, access shut on the very next call.
    ended = root.end_emergency(em.id, reason="应急响应终止")
    assert list(ended.revoked_grant_ids) == list(em.grant_ids)
    assert ended.emergency.status is EmergencyStatus.ENDED
    assert ended.emergency.ended_by == "root" and ended.emergency.end_reason == "应急响应终止"
    expect_error(lambda: rescue.lookup(DS, subject, purpose=PURPOSE), DENIED, "GRANT_REQUIRED")
    grant = gw.parts.decider.grants.get(em.grant_ids[0])
    assert (grant["status"], grant["revoke_reason"], grant["emergency_id"]) == (
        "revoked",
        "EMERGENCY_ENDED",
        em.id,
    )
    expect_error(lambda: root.end_emergency(em.id, reason="再次终止"), FAILED, "EMERGENCY_ENDED")

    # The sealing list names exactly the calls made under the emergency.
    sl = root.sealing_list(em.id)
    assert [x.request_id for x in sl.entries] == made
    assert [x.outcome for x in sl.entries] == ["OK", "PERMISSION_DENIED", "OK"]
    assert {x.caller for x in sl.entries} == {"agency-rescue"}
    assert {x.department for x in sl.entries} == {"汶川县应急管理局"}
    assert {x.dataset for x in sl.entries} == {DS} and {x.action for x in sl.entries} == {"lookup"}
    h_subject, h_other = (gw.parts.keyring.subject_hash(s) for s in (subject, other))
    assert [list(x.subject_hashes) for x in sl.entries] == [
        [h_subject], [h_subject], [h_subject, h_other],
    ]  # fmt: skip
    assert [x.subject_records for x in sl.entries] == [1, 1, 2]
    assert (sl.calls, sl.subject_records) == (3, 4)
    assert subject not in str(sl) and other not in str(sl)

    sealed = root.seal_emergency(em.id)
    assert sealed.sealed_by == "root" and sealed.sealed_calls == 3
    assert sealed.sealing_digest == sl.digest
    expect_error(lambda: root.seal_emergency(em.id), FAILED, "EMERGENCY_SEALED")
    # A sealed emergency's list stays readable, unchanged.
    assert root.sealing_list(em.id).digest == sl.digest
    assert [h.event for h in root.get_emergency(em.id).history] == ["declared", "ended", "sealed"]

    # Every transition is audited, with its ids.
    recs = [x for x in gw.audit_records() if x["action"].startswith("emergency.")]
    mine = [x for x in recs if (x.get("details") or {}).get("emergency_id") == em.id]
    # declare, end, sealing list (a read: no transition), seal, sealing list again
    assert [x["details"].get("transition") for x in mine if x["outcome"] == "OK"] == [
        "emergency_declared", "emergency_ended", None, "emergency_sealed", None,
    ]  # fmt: skip
    assert mine[0]["details"]["grants_created"] == list(em.grant_ids)
    assert mine[0]["dataset"] == DS and mine[0]["caller"] == "root"
    calls = [x for x in gw.audit_records() if em.id in x.get("emergencies", [])]
    assert {x["request_id"] for x in calls} == set(made)
    assert subject not in gw.audit_text()


@pytest.mark.requirement("R11")
def test_end_by_time_shuts_access_on_the_next_call(gw: Harness) -> None:
    subject = gw.demo["assistance_recipient"]["id_number"]
    purpose = "山洪灾害转移安置核查"
    rescue, root = gw.client("agency-rescue"), gw.client("root")
    real_clock = gw.parts.clock
    start_at = real_clock()
    em = declare(root, gw, purpose=purpose, ends_at=start_at + timedelta(hours=2))
    try:
        gw.parts.clock = lambda: start_at + timedelta(hours=1)
        assert rescue.lookup(DS, subject, purpose=purpose).records  # plan now cached
        gw.parts.clock = lambda: start_at + timedelta(hours=2, seconds=1)
        # Nothing marked it ended yet: the cached plan expires with the emergency.
        expect_error(lambda: rescue.lookup(DS, subject, purpose=purpose), DENIED, "GRANT_EXPIRED")
        # Listing notices the end, records it and revokes the grants.
        listed = {x.id: x for x in root.list_emergencies(status="ended")}
        assert listed[em.id].ended_by == EXPIRY_ACTOR
        assert listed[em.id].end_reason == "ENDS_AT_PASSED"
        grant = gw.parts.decider.grants.get(em.grant_ids[0])
        assert (grant["status"], grant["revoke_reason"]) == ("revoked", "EMERGENCY_ENDED")
        rec = [x for x in gw.audit_records() if x["action"] == "emergency.read"][-1]
        assert rec["details"] == {
            "transition": "emergency_expired",
            "emergency_ids": [em.id],
            "grants_revoked": list(em.grant_ids),
        }
        expect_error(lambda: rescue.lookup(DS, subject, purpose=purpose), DENIED, "GRANT_REQUIRED")
        assert root.sealing_list(em.id).calls == 1
        assert root.seal_emergency(em.id).sealed_calls == 1
    finally:
        gw.parts.clock = real_clock


@pytest.mark.requirement("R11")
def test_bad_inputs_get_precise_errors(gw: Harness) -> None:
    root = gw.client("root")
    now = gw.parts.clock()
    for ends_at, reason in (
        (now - timedelta(minutes=1), "ENDS_AT_NOT_FUTURE"),
        (now + timedelta(days=30, minutes=1), "ENDS_AT_TOO_FAR"),
        (None, "ENDS_AT_MISSING"),
    ):
        expect_error(lambda e=ends_at: declare(root, gw, ends_at=e), INVALID, reason, ["ends_at"])
    expect_error(
        lambda: declare(root, gw, scope={"no.such": ["name"]}),
        INVALID, "UNKNOWN_DATASET", ["scope[0].dataset"],
    )  # fmt: skip
    expect_error(
        lambda: declare(root, gw, scope={DS: ["name", "no_such_field"]}),
        INVALID, "UNKNOWN_FIELD", ["scope[0].fields[1]"],
    )  # fmt: skip
    expect_error(
        lambda: declare(root, gw, scope={"population.basic": ["name"]}),
        INVALID, "DATASET_NOT_CONDITIONAL", ["scope[0].dataset"],
    )  # fmt: skip
    expect_error(
        lambda: declare(root, gw, agencies=["agency-rescue", "no-such-agency", "counter-wenchuan"]),
        INVALID, "UNKNOWN_CALLER", ["agencies[1]", "agencies[2]"],
    )  # fmt: skip
    e = expect_error(
        lambda: declare(root, gw, title="", purpose="联系 13800138000", agencies=[], scope={}),
        INVALID, "TITLE_MISSING", ["title", "purpose", "scope", "agencies"],
    )  # fmt: skip
    assert [v.reason for v in e.violations][1:] == [
        "PURPOSE_CONTAINS_PERSONAL_DATA", "SCOPE_MISSING", "AGENCIES_MISSING",
    ]  # fmt: skip
    assert "13800138000" not in str(e)
    # Only an administrator declares: refused before the input is even looked at.
    for caller in ("agency-rescue", "counter-wenchuan", "public-portal"):
        with gw.client(caller) as c:
            expect_error(lambda c=c: declare(c, gw), DENIED, "ADMIN_ROLE_REQUIRED")
            expect_error(lambda c=c: declare(c, gw, scope={}), DENIED, "ADMIN_ROLE_REQUIRED")
    unknown = "em-0000000000000000"
    expect_error(
        lambda: root.end_emergency(unknown, reason="结束"), NOT_FOUND, "EMERGENCY_NOT_FOUND"
    )
    expect_error(lambda: root.get_emergency(unknown), NOT_FOUND, "EMERGENCY_NOT_FOUND")
    expect_error(lambda: root.sealing_list(unknown), NOT_FOUND, "EMERGENCY_NOT_FOUND")
    expect_error(lambda: root.seal_emergency(unknown), NOT_FOUND, "EMERGENCY_NOT_FOUND")
    expect_error(lambda: root.get_emergency(""), INVALID, "EMERGENCY_ID_MISSING", ["emergency_id"])
    em = declare(root, gw, purpose="森林火灾疏散核查")
    expect_error(
        lambda: root.end_emergency(em.id, reason=""), INVALID, "REASON_MISSING", ["reason"]
    )
    root.end_emergency(em.id, reason="火情解除")


@pytest.mark.requirement("R11")
def test_cli_declare_list_sealing_csv_and_seal(gw: Harness) -> None:
    def govgw(caller: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", "--target", gw.target,
             "--api-key", gw.keys[caller], "emergency", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    ends = (gw.parts.clock() + timedelta(days=3)).isoformat()
    out = govgw(
        "root", "declare", "--title", "泥石流应急", "--legal-basis", LEGAL_BASIS,
        "--purpose", "泥石流受灾人员核查", "--ends-at", ends,
        "--scope", f"{DS}:name,assistance_type", "--agency", "agency-rescue", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    em = json.loads(out.stdout)
    assert em["status"] == "ACTIVE" and em["agencies"] == ["agency-rescue"]
    subject = gw.demo["assistance_recipient"]["id_number"]
    with gw.client("agency-rescue") as rescue:
        rid = rescue.lookup(DS, subject, purpose="泥石流受灾人员核查").request_id
    listed = govgw("agency-rescue", "list", "--status", "active", "--json")
    assert listed.returncode == 0 and em["id"] in {
        e["id"] for e in json.loads(listed.stdout)["items"]
    }
    shown = govgw("agency-rescue", "show", em["id"])
    assert shown.returncode == 0 and "泥石流受灾人员核查" in shown.stdout
    assert "root  declared" in shown.stdout
    bad = govgw("agency-rescue", "end", em["id"], "--reason", "结束", "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["error"]["reason"] == "ADMIN_ROLE_REQUIRED"
    assert govgw("root", "end", em["id"], "--reason", "险情解除").returncode == 0
    sealing = govgw("root", "sealing", em["id"], "--csv")
    assert sealing.returncode == 0, sealing.stderr
    rows = list(csv.DictReader(io.StringIO(sealing.stdout)))
    assert [r["request_id"] for r in rows] == [rid]
    assert rows[0]["subject_hashes"] == gw.parts.keyring.subject_hash(subject)
    assert rows[0]["subject_records"] == "1" and subject not in sealing.stdout
    js = govgw("root", "sealing", em["id"], "--json")
    doc = json.loads(js.stdout)
    assert doc["calls"] == 1 and doc["entries"][0]["subject_records"] == 1
    sealed = govgw("root", "seal", em["id"], "--json")
    assert sealed.returncode == 0 and json.loads(sealed.stdout)["sealed_by"] == "root"
    again = govgw("root", "seal", em["id"], "--json")
    assert json.loads(again.stdout)["error"]["code"] == "FAILED_PRECONDITION"


def test_audit_chain_still_verifies(gw: Harness) -> None:
    assert admin.audit_verify(Path(gw.data_dir))["ok"]


@pytest.mark.requirement("R11")
def test_server_task_ends_emergencies_past_their_end(tmp_path: Path) -> None:
    h = setup(tmp_path, emergency_interval_s=0.1)
    try:
        root = h.client("root")
        start_at = h.parts.clock()
        em = declare(root, h, ends_at=start_at + timedelta(hours=1))
        time.sleep(0.3)
        assert h.parts.decider.emergencies.get(em.id)["status"] == "active"
        h.parts.clock = lambda: start_at + timedelta(hours=1, seconds=1)

        def ended() -> None:
            doc = h.parts.decider.emergencies.get(em.id)
            assert doc["status"] == "ended" and doc["ended_by"] == EXPIRY_ACTOR
            assert any(x["caller"] == EXPIRY_ACTOR for x in h.audit_records())

        eventually(ended, within_s=5)
        rec = next(x for x in h.audit_records() if x["caller"] == EXPIRY_ACTOR)
        assert rec["details"]["emergency_id"] == em.id
        assert rec["details"]["grants_revoked"] == list(em.grant_ids)
        assert h.parts.decider.grants.get(em.grant_ids[0])["revoke_reason"] == "EMERGENCY_ENDED"
        assert admin.audit_verify(Path(h.data_dir))["ok"]
    finally:
        h.stop()
