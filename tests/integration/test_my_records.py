"""GetMyRecords end to end: the data subject sees what the pool holds about them (R8).

A real server on a fixed 2026 date whose served catalog marks one field secret
(population.basic.phone), so "secret fields are withheld" is tested on a real
record; subject tokens signed by the data directory's demo identity provider.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from clients.sdk import to_json
from clients.sdk.types import Sensitivity, ShareClass
from gateway import admin
from gateway.access.subject_tokens import load_private_key, mint
from gateway.app import attach, build_parts
from gateway.catalog import DEFAULT_CATALOG
from gateway.config import DEFAULT_POLICY_DIR, ServeConfig
from gateway.plan import SUBJECT_RECORDS
from gateway.release.own import WITHHELD_SECRET
from gateway.server import GatewayServer
from tests.support import Harness, expect_error, make_data_dir, shifted_clock

TODAY = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # a Monday
SECRET_FIELD = ("population.basic", "phone")
PERSON_DATASETS = ("population.basic", "social_assistance.recipient")
ENTITY_DATASETS = ("legal_entity.basic", "licence.business", "credit.record")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("my-records")
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    # The population register's provider, which answers corrections.
    keys["agency-police"] = admin.callers_add(
        data_dir,
        "agency-police",
        "agency",
        "汶川县公安局",
        "513221",
        provider_ids=("county.public-security",),
    )["api_key"]
    # The served policy: the release's, with population.basic.phone marked secret.
    policy_dir = tmp_path_factory.mktemp("policy") / "policies"
    # Without the release's Rego tests: they pin the release catalog's sensitivities.
    shutil.copytree(DEFAULT_POLICY_DIR, policy_dir, ignore=shutil.ignore_patterns("tests"))
    catalog_path = policy_dir / "data" / "catalog.json"
    doc = json.loads(catalog_path.read_text(encoding="utf-8"))
    for f in doc["datasets"][SECRET_FIELD[0]]["fields"]:
        if f["name"] == SECRET_FIELD[1]:
            f["sensitivity"] = "secret"
    catalog_path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    assert json.loads(DEFAULT_CATALOG.read_text(encoding="utf-8")) != doc
    cfg = ServeConfig(
        data_dir=data_dir,
        listen="127.0.0.1:0",
        grace_s=1,
        sweep_interval_s=0,
        policy_dir=policy_dir,
        catalog_path=catalog_path,
    )
    parts = attach(build_parts(cfg), cfg)
    parts.clock = parts.audit.clock = shifted_clock(TODAY)
    server = GatewayServer(cfg, parts)
    server.start()
    h = Harness(data_dir, cfg, parts, server, keys, demo)
    yield h
    h.stop()


def token(h: Harness, subject: str, *, age: timedelta = timedelta(0), **kw) -> str:
    key = load_private_key((h.data_dir / "keys" / "demo-subject-issuer.pem").read_bytes())
    return mint(key, issuer=admin.DEMO_ISSUER, subject=subject, now=h.parts.clock() - age, **kw)


def values(d) -> list[dict[str, str]]:
    return [{f.name: f.value for f in rec.fields} for rec in d.records]


@pytest.mark.requirement("R8", "R15")
def test_a_person_sees_exactly_their_own_records_in_the_datasets_holding_them(
    gw: Harness,
) -> None:
    person = gw.demo["assistance_recipient"]
    pid = person["id_number"]
    r = gw.client("public-portal").my_records(token(gw, pid))
    assert r.request_id.startswith("req_")
    # Both person datasets hold this subject; no entity dataset is read.
    assert [d.dataset for d in r.datasets] == list(PERSON_DATASETS)
    pool = gw.parts.pool
    for d in r.datasets:
        held = pool.read(d.dataset, pid)
        ds = gw.parts.catalog.get(d.dataset)
        assert ds is not None and d.title == ds.title
        # Every field, in catalog order, with the raw (unmasked) value the pool holds.
        assert [[f.name for f in rec.fields] for rec in d.records] == [list(ds.field_names)] * len(
            held
        )
        expected = [
            {f: ("" if (d.dataset, f) == SECRET_FIELD else row.get(f, "")) for f in ds.field_names}
            for row in held
        ]
        assert values(d) == expected
        assert all(v[ds.subject_field] == pid for v in values(d))
        # Provenance as Lookup carries it, plus the import time of that version.
        history = pool.versions(d.dataset)
        assert d.provenance.source_department == ds.provider
        assert d.provenance.dataset == d.dataset
        assert d.provenance.dataset_version == history[0]["version"]
        assert d.provenance.retrieved_at.timestamp() == pytest.approx(
            gw.parts.clock().timestamp(), abs=30
        )
        assert d.imported_at.strftime("%Y-%m-%dT%H:%M:%SZ") == history[0]["imported_at"]
        assert not d.withdrawn_from_open_data
    population = r.datasets[0]
    assert population.records[0].fields[1].value == person["name"]


@pytest.mark.requirement("R8")
def test_a_subject_sees_nothing_of_anyone_else(gw: Harness) -> None:
    pid = gw.demo["adult_resident"]["id_number"]
    others = {gw.demo[k]["id_number"] for k in ("minor", "assistance_recipient")} | {
        gw.demo[k]["uscc"] for k in ("active_entity", "deregistered_entity")
    }
    r = gw.client("counter-wenchuan").my_records(token(gw, pid))
    # The adult resident is in the population register only.
    assert [d.dataset for d in r.datasets] == ["population.basic"]
    shown = json.dumps(to_json(r), ensure_ascii=False)
    assert pid in shown
    assert not any(o in shown for o in others)


@pytest.mark.requirement("R8")
def test_an_entity_token_sees_the_entity_datasets(gw: Harness) -> None:
    entity = gw.demo["active_entity"]
    code = entity["uscc"]
    r = gw.client("public-portal").my_records(token(gw, code))
    names = [d.dataset for d in r.datasets]
    assert names and set(names) <= set(ENTITY_DATASETS) and names[0] == "legal_entity.basic"
    # Exactly the entity datasets holding it.
    assert names == [ds for ds in ENTITY_DATASETS if gw.parts.pool.read(ds, code)]
    assert values(r.datasets[0])[0]["name"] == entity["name"]
    assert values(r.datasets[0])[0]["legal_representative"] == entity["legal_representative"]
    for d in r.datasets:
        assert all(v["uscc"] == code for v in values(d))
    # Narrowed to one dataset.
    one = gw.client("public-portal").my_records(token(gw, code), dataset="legal_entity.basic")
    assert [d.dataset for d in one.datasets] == ["legal_entity.basic"]


@pytest.mark.requirement("R2", "R8")
def test_secret_fields_are_withheld_with_the_reason(gw: Harness) -> None:
    pid = gw.demo["adult_resident"]["id_number"]
    assert gw.parts.pool.read("population.basic", pid)[0]["phone"]  # the pool holds one
    r = gw.client("public-portal").my_records(token(gw, pid))
    phone = next(f for f in r.datasets[0].records[0].fields if f.name == "phone")
    assert (phone.value, phone.withheld_reason) == ("", WITHHELD_SECRET)
    assert gw.demo["adult_resident"]["phone"] not in json.dumps(to_json(r), ensure_ascii=False)
    shown = [f for f in r.datasets[0].records[0].fields if f.name != "phone"]
    assert all(f.value and not f.withheld_reason for f in shown if f.name != "region_code")


@pytest.mark.requirement("R8")
def test_a_pending_correction_marks_the_field_and_its_answer_clears_it(gw: Harness) -> None:
    pid = gw.demo["minor"]["id_number"]
    public = gw.client("public-portal")
    before = public.my_records(token(gw, pid))
    assert not any(f.correction_pending_since for f in before.datasets[0].records[0].fields)
    c = public.file_correction(
        token(gw, pid),
        dataset="population.basic",
        field="household_address",
        statement="户籍地址应为汶川县威州镇岷江路12号",
    )
    after = public.my_records(token(gw, pid))
    marked = {
        f.name: f.correction_pending_since
        for f in after.datasets[0].records[0].fields
        if f.correction_pending_since
    }
    assert marked == {"household_address": "2026-06-01"}
    gw.client("agency-police").answer_correction(c.id, corrected=True, note="已更正")
    cleared = public.my_records(token(gw, pid))
    assert not any(f.correction_pending_since for f in cleared.datasets[0].records[0].fields)


@pytest.mark.requirement("R8")
def test_a_withdrawn_record_is_still_shown_to_its_subject(gw: Harness) -> None:
    code = gw.demo["deregistered_entity"]["uscc"]
    public = gw.client("public-portal")
    public.request_withdrawal(token(gw, code), dataset="legal_entity.basic", reason="已注销")
    # The open route answers as if absent...
    expect_error(
        lambda: public.lookup("legal_entity.basic", code, ["name"], purpose="企业信息查询"),
        grpc.StatusCode.NOT_FOUND,
        "SUBJECT_NOT_FOUND",
    )
    # ...the subject still sees the record, marked.
    r = public.my_records(token(gw, code), dataset="legal_entity.basic")
    [d] = r.datasets
    assert d.withdrawn_from_open_data and values(d)[0]["uscc"] == code


def test_a_stale_token_is_refused(gw: Harness) -> None:
    pid = gw.demo["adult_resident"]["id_number"]
    public = gw.client("public-portal")
    expect_error(
        lambda: public.my_records(token(gw, pid, age=timedelta(minutes=6))),
        grpc.StatusCode.UNAUTHENTICATED,
        "SUBJECT_TOKEN_STALE",
    )
    # Valid for the subject's other calls all the same (they return no raw values).
    assert public.my_corrections(token(gw, pid, age=timedelta(minutes=6))).items == ()
    # 4 minutes is fresh enough.
    assert public.my_records(token(gw, pid, age=timedelta(minutes=4))).datasets


def test_bad_requests_get_precise_errors(gw: Harness) -> None:
    pid = gw.demo["adult_resident"]["id_number"]
    public = gw.client("public-portal")
    expect_error(
        lambda: public.my_records(""),
        grpc.StatusCode.UNAUTHENTICATED,
        "SUBJECT_TOKEN_MISSING",
    )
    expect_error(
        lambda: public.my_records(token(gw, pid, azp="counter-wenchuan")),
        grpc.StatusCode.UNAUTHENTICATED,
        "SUBJECT_TOKEN_CALLER_MISMATCH",
    )
    assert gw.client("counter-wenchuan").my_records(token(gw, pid, azp="counter-wenchuan"))
    expect_error(
        lambda: public.my_records(token(gw, pid), dataset="no.such"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNKNOWN_DATASET",
        ["dataset"],
    )
    expect_error(
        lambda: public.my_records(token(gw, pid), dataset="legal_entity.basic"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "DATASET_SUBJECT_KIND",
        ["dataset"],
    )


def test_an_agency_caller_is_refused_by_the_policy(gw: Harness) -> None:
    pid = gw.demo["adult_resident"]["id_number"]
    e = expect_error(
        lambda: gw.client("agency-civil").my_records(token(gw, pid)),
        grpc.StatusCode.PERMISSION_DENIED,
        "SUBJECT_CHANNEL_REQUIRED",
    )
    assert "service counter" in str(e)


def test_the_call_is_audited_without_values_and_not_listed_as_a_use(gw: Harness) -> None:
    person = gw.demo["assistance_recipient"]
    pid = person["id_number"]
    public = gw.client("public-portal")
    r = public.my_records(token(gw, pid))
    [rec] = [x for x in gw.audit_records() if x.get("request_id") == r.request_id]
    assert rec["action"] == SUBJECT_RECORDS and rec["outcome"] == "OK"
    assert rec["subject"] == gw.parts.keyring.subject_hash(pid)
    assert rec["dataset"].split(",") == list(PERSON_DATASETS)  # every dataset read
    assert "details" not in rec  # no count, no field: which datasets hold them is unsaid
    text = json.dumps(rec, ensure_ascii=False)
    held = [v for d in r.datasets for rec_ in d.records for v in (f.value for f in rec_.fields)]
    assert not [v for v in held if len(v) >= 4 and v in text]
    assert pid not in gw.audit_text() and person["name"] not in gw.audit_text()
    # The subject's own call: not a use of their data by a third party.
    assert r.request_id not in {u.request_id for u in public.all_my_usage(token(gw, pid))}


@pytest.mark.requirement("R2")
def test_a_secret_field_is_shared_with_nobody_though_its_dataset_is_unconditional(
    gw: Harness,
) -> None:
    """R2: the sensitivity level decides a field's class. population.basic is unconditional
    share: its public and internal fields go to any agency directly; the field this served
    catalog marks secret is not shared (不予共享), asked for or not."""
    pid = gw.demo["adult_resident"]["id_number"]
    with gw.client("agency-civil") as ag:
        ds = ag.get_dataset("population.basic")
        levels = {f.name: f.sensitivity for f in ds.fields}
        assert ds.share_class is ShareClass.UNCONDITIONAL
        assert levels["phone"] is Sensitivity.SECRET
        assert levels["name"] is Sensitivity.INTERNAL
        assert levels["region_code"] is Sensitivity.PUBLIC
        (rec,) = ag.lookup("population.basic", pid, purpose="资格审核").records
        assert "phone" not in rec and {"name", "region_code"} <= set(rec)
        expect_error(
            lambda: ag.lookup("population.basic", pid, ["phone"], purpose="资格审核"),
            grpc.StatusCode.PERMISSION_DENIED,
            "FIELD_NOT_ALLOWED",
        )
