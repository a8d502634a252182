"""Fields under correction (校核 pending, R8) are indicated to callers that use them.

"Service must not be refused meanwhile when valid proof is shown": while a
subject's correction of a field is pending, Lookup records, VerifyIdentity and
VerifyAttributes answers that used the field name it with the filing date,
never the statement, and only to callers whose plan includes the field. A
real server on a fixed date; subject tokens from the demo identity provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from govgw.v1 import lookup_pb2

from clients.sdk import Disputed
from gateway import admin
from gateway.access.subject_tokens import load_private_key, mint
from tests.support import Harness, expect_error, make_data_dir, shifted_clock, start

TODAY = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # Monday: filed on 2026-06-01, China time
PB = "population.basic"
SA = "social_assistance.recipient"
PURPOSE = "社会保障待遇资格认证"
STATEMENT = "本人姓名应为王建囯，身份证上为准"
NAME_DISPUTED = Disputed(PB, "name", "2026-06-01")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("disputed")
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    keys["agency-police"] = admin.callers_add(
        data_dir,
        "agency-police",
        "agency",
        "汶川县公安局",
        "513221",
        provider_ids=("county.public-security",),
    )["api_key"]
    # agency-far may read one field of the social-assistance records: assistance_type.
    admin.grants_add(data_dir, "agency-far", SA, ["assistance_type"], PURPOSE, "365d")
    h = start(data_dir, keys, demo, clock=shifted_clock(TODAY), sweep_interval_s=0)
    yield h
    h.stop()


def token(h: Harness, subject: str, caller: str) -> str:
    key = load_private_key((h.data_dir / "keys" / "demo-subject-issuer.pem").read_bytes())
    return mint(key, issuer=admin.DEMO_ISSUER, subject=subject, now=h.parts.clock(), azp=caller)


def file(h: Harness, subject: str, dataset: str, field: str) -> str:
    with h.client("counter-wenchuan") as c:
        t = token(h, subject, "counter-wenchuan")
        return c.file_correction(t, dataset=dataset, field=field, statement=STATEMENT).id


@pytest.mark.requirement("R8")
def test_a_pending_correction_is_indicated_until_it_is_answered(gw: Harness) -> None:
    person = gw.demo["adult_resident"]
    pid, name = person["id_number"], person["name"]
    counter = gw.client("counter-wenchuan")

    before = counter.verify_identity(name, pid, purpose=PURPOSE)
    assert before.matched and before.disputed == ()
    assert not before.receipt.claims.disputed_fields
    assert counter.lookup(PB, pid, purpose=PURPOSE).disputed == ()

    cid = file(gw, pid, PB, "name")
    # The very next calls that use the name say so, with the filing date.
    rec = counter.lookup(PB, pid, purpose=PURPOSE)
    assert rec.disputed == (NAME_DISPUTED,)
    assert rec.to_json()["disputed_fields"] == [
        {"dataset": PB, "field": "name", "filed_on": "2026-06-01"}
    ]
    raw = counter.stub("lookup").Lookup(
        lookup_pb2.LookupRequest(dataset=PB, subject_key=pid, purpose=PURPOSE),
        metadata=counter._metadata,
        timeout=10,
    )
    (record,) = raw.records
    assert [(d.dataset, d.field, d.filed_on) for d in record.disputed_fields] == [
        (PB, "name", "2026-06-01")
    ]
    ident = counter.verify_identity(name, pid, purpose=PURPOSE)
    assert ident.matched and ident.disputed == (NAME_DISPUTED,)
    # The signed receipt says the clerk was told (its signature checked by the SDK).
    assert ident.receipt.claims.disputed_fields == "population.basic:name:2026-06-01"
    assert ident.to_json()["disputed_fields"] == [NAME_DISPUTED.to_json()]

    # Calls that do not use the name are not told.
    assert counter.lookup(PB, pid, ["birth_date", "gender"], purpose=PURPOSE).disputed == ()
    ages = counter.verify_attributes(pid, [("age_at_least", ["18"])], purpose=PURPOSE)
    assert ages.disputed == () and not ages.receipt.claims.disputed_fields

    # Batches: per subject.
    minor = gw.demo["minor"]["id_number"]
    items = list(gw.client("agency-police").batch_lookup(PB, [pid, minor], purpose=PURPOSE))
    assert [i.disputed for i in items] == [(NAME_DISPUTED,), ()]
    # VerifyIdentityBatch reads the pending corrections once per call: each item as its
    # own VerifyIdentity would be told (a NO_MATCH never), and its signed receipt says so.
    minor_name = gw.demo["minor"]["name"]
    with gw.client("counter-wenchuan") as c:
        answers = list(
            c.verify_identity_batch(
                [(name, pid), (minor_name, minor), ("王错名", pid), (name, pid)], purpose=PURPOSE
            )
        )
    assert [a.result.name for a in answers] == ["MATCH", "MATCH", "NO_MATCH", "MATCH"]
    assert [a.disputed_fields for a in answers] == [(NAME_DISPUTED,), (), (), (NAME_DISPUTED,)]
    claims = [a.receipt.claims.disputed_fields for a in answers if a.receipt is not None]
    assert claims == ["population.basic:name:2026-06-01", "", "", claims[0]]

    # Audited by field name; the statement is nowhere in the trail.
    details = [
        r.get("details", {}).get("disputed_fields")
        for r in gw.audit_records()
        if r["action"] in ("lookup", "verify.identity") and r["outcome"] == "OK"
    ]
    assert ["population.basic.name"] in details
    assert STATEMENT not in gw.audit_text()

    # Answered: no longer disputed, from the next call on.
    gw.client("agency-police").answer_correction(cid, corrected=True, note="已核实更正姓名")
    assert counter.lookup(PB, pid, purpose=PURPOSE).disputed == ()
    assert counter.verify_identity(name, pid, purpose=PURPOSE).disputed == ()


def test_no_indication_for_a_field_the_callers_plan_does_not_include(gw: Harness) -> None:
    pid = gw.demo["assistance_recipient"]["id_number"]
    file(gw, pid, SA, "name")
    file(gw, pid, SA, "assistance_type")
    far = gw.client("agency-far")
    # The grant names assistance_type only: the disputed name is not mentioned.
    rec = far.lookup(SA, pid, purpose=PURPOSE)
    assert set(rec.records[0]) == {"assistance_type"}
    assert rec.disputed == (Disputed(SA, "assistance_type", "2026-06-01"),)
    # Callers allowed nothing on the dataset learn nothing either.
    for caller, reason in (
        ("counter-wenchuan", "GRANT_REQUIRED"),
        ("public-portal", "DATASET_NOT_OPEN"),
    ):
        c = gw.client(caller)
        e = expect_error(
            lambda c=c: c.lookup(SA, pid, purpose=PURPOSE),
            grpc.StatusCode.PERMISSION_DENIED,
            reason,
        )
        assert "name" not in e.metadata.get("fields", "") and "correction" not in str(e)


@pytest.mark.requirement("R8")
def test_cli_tells_the_clerk(gw: Harness) -> None:
    person = gw.demo["minor"]
    file(gw, person["id_number"], PB, "birth_date")
    # Outside the counter's region the record is not released, and so nothing is indicated.
    expect_error(
        lambda: gw.client("counter-wenchuan").lookup(PB, person["id_number"], purpose=PURPOSE),
        grpc.StatusCode.NOT_FOUND,
        "SUBJECT_NOT_FOUND",
    )

    def govgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", "--target", gw.target,
             "--api-key", gw.keys["agency-civil"], *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    args = ("lookup", "--dataset", PB, "--subject", person["id_number"], "--purpose", PURPOSE)
    out = govgw(*args)
    assert out.returncode == 0, out.stderr
    assert "under correction (校核)" in out.stdout
    assert "population.basic.birth_date (correction filed 2026-06-01)" in out.stdout
    out = govgw(*args, "--json")
    assert json.loads(out.stdout)["disputed_fields"] == [
        {"dataset": PB, "field": "birth_date", "filed_on": "2026-06-01"}
    ]
    out = govgw(
        "verify", "attributes", "--subject", person["id_number"], "--predicate",
        "age_at_least:18", "--purpose", PURPOSE, "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["disputed_fields"] == [
        {"dataset": PB, "field": "birth_date", "filed_on": "2026-06-01"}
    ]
    assert doc["receipt_claims"]["disputed_fields"] == "population.basic:birth_date:2026-06-01"
    out = govgw(
        "verify", "identity", "--name", person["name"], "--id-number", person["id_number"],
        "--purpose", PURPOSE,
    )  # fmt: skip
    assert out.returncode == 0 and "under correction" not in out.stdout


@pytest.mark.requirement("R8")
def test_a_no_match_names_no_disputed_field(gw: Harness) -> None:
    """A disputed field says a record is there: a NO_MATCH (which must read the same
    for an absent person) never names one, even while the name is under correction."""
    person = gw.demo["minor"]
    pid = person["id_number"]
    file(gw, pid, PB, "name")
    with gw.client("counter-wenchuan") as counter:
        assert counter.verify_identity(person["name"], pid, purpose=PURPOSE).disputed == (
            NAME_DISPUTED,
        )
        wrong = counter.verify_identity("王错名", pid, purpose=PURPOSE)
        absent = counter.verify_identity("王错名", "110101199003076632", purpose=PURPOSE)
    assert not wrong.matched and not absent.matched
    assert wrong.disputed == absent.disputed == ()
    assert not wrong.receipt.claims.disputed_fields
