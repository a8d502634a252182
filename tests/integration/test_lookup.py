"""Lookup and BatchLookup through a real server: plans, masking, provenance, grants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from stdnum.cn import ric, uscc

from gateway import admin
from tests.support import Harness, expect_error

DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PURPOSE = "社会保障待遇资格认证"


@pytest.mark.requirement("R7", "R15")
def test_agency_lookup_releases_plan_fields_masked_as_the_plan_says(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("agency-civil") as gw:
        r = gw.lookup("population.basic", adult["id_number"], purpose=PURPOSE)
    (rec,) = r.records
    assert rec["name"].value == adult["name"] and rec["name"].treatment == "keep"
    assert rec["phone"].treatment == "mask"
    assert rec["phone"].value[:3] == adult["phone"][:3] and rec["phone"].value != adult["phone"]
    assert rec["id_number"].value.startswith(adult["id_number"][:6])
    assert rec["id_number"].value != adult["id_number"]
    assert rec["household_address"].treatment == "generalize"
    assert adult["household_address"].startswith(rec["household_address"].value)
    assert rec["household_address"].value != adult["household_address"]
    # R15: provenance names the source department, the dataset version and when.
    assert r.provenance.source_department == "县公安局"
    assert r.provenance.dataset_version
    assert abs(r.provenance.retrieved_at.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(
        minutes=1
    )


def test_requested_fields_only_in_catalog_order(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("agency-civil") as gw:
        r = gw.lookup(
            "population.basic", adult["id_number"], ["region_code", "gender"], purpose=PURPOSE
        )
    assert list(r.records[0]) == ["gender", "region_code"]


def test_unknown_and_repeated_fields_are_invalid(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("agency-civil") as gw:
        expect_error(
            lambda: gw.lookup(
                "population.basic",
                adult["id_number"],
                ["gender", "salary", "gender"],
                purpose=PURPOSE,
            ),
            INVALID,
            "UNKNOWN_FIELD",
            ["fields[1]", "fields[2]"],
        )


@pytest.mark.requirement("R13")
def test_unknown_dataset_and_wrong_key_kind_are_invalid(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    person_key = "11010519491231002X"  # a valid ID number, and no valid USCC
    assert ric.is_valid(person_key) and not uscc.is_valid(person_key)
    with gateway.client("agency-civil") as gw:
        expect_error(
            lambda: gw.lookup("tax.secret", adult["id_number"], purpose=PURPOSE),
            INVALID,
            "UNKNOWN_DATASET",
            ["dataset"],
        )
        expect_error(
            lambda: gw.lookup("legal_entity.basic", person_key, purpose=PURPOSE),
            INVALID,
            "USCC_CHECK_CHARACTER",
            ["subject_key"],
        )


@pytest.mark.requirement("R6", "R7")
def test_public_gets_open_treatments_and_not_closed_datasets(gateway: Harness) -> None:
    active, adult = gateway.demo["active_entity"], gateway.demo["adult_resident"]
    with gateway.client("public-portal") as gw:
        r = gw.lookup("legal_entity.basic", active["uscc"], purpose="核实交易对象")
        expect_error(
            lambda: gw.lookup("population.basic", adult["id_number"], purpose="查询"),
            DENIED,
            "DATASET_NOT_OPEN",
        )
        expect_error(
            lambda: gw.lookup("licence.business", active["uscc"], purpose="查询"),
            DENIED,
            "GRANT_REQUIRED",
        )
    rec = r.records[0]
    assert rec["name"].value == active["name"]
    assert rec["legal_representative"].treatment == "mask"
    assert rec["legal_representative"].value != active["legal_representative"]


@pytest.mark.requirement("R3", "R5")
def test_conditional_share_needs_a_grant_bound_to_caller_purpose_and_fields(
    gateway: Harness,
) -> None:
    recipient = gateway.demo["assistance_recipient"]
    ds, purpose = "social_assistance.recipient", "最低生活保障资格复核"
    with gateway.client("agency-civil") as gw:
        expect_error(
            lambda: gw.lookup(ds, recipient["id_number"], purpose=purpose), DENIED, "GRANT_REQUIRED"
        )
        grant = admin.grants_add(
            gateway.data_dir, "agency-civil", ds, ["assistance_type", "start_date"], purpose, "30d"
        )
        try:
            gateway.parts.decider.invalidate()
            r = gw.lookup(ds, recipient["id_number"], purpose=purpose)
            assert set(r.records[0]) == {"assistance_type", "start_date"}
            assert r.records[0]["assistance_type"].value == recipient["assistance_type"]
            expect_error(
                lambda: gw.lookup(ds, recipient["id_number"], ["monthly_amount"], purpose=purpose),
                DENIED,
                "FIELD_NOT_ALLOWED",
            )
            # The grant is bound to its purpose.
            expect_error(
                lambda: gw.lookup(ds, recipient["id_number"], purpose="其他用途"),
                DENIED,
                "GRANT_REQUIRED",
            )
        finally:
            admin.grants_revoke(gateway.data_dir, grant["id"], "test over")
            gateway.parts.decider.invalidate()
        expect_error(
            lambda: gw.lookup(ds, recipient["id_number"], purpose=purpose), DENIED, "GRANT_REQUIRED"
        )


def test_counters_see_only_their_region(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    region = adult["region_code"]
    elsewhere = "513224" if not region.startswith("513224") else "513221"
    keys = {
        name: admin.callers_add(
            gateway.data_dir, f"counter-{name}", "counter", "政务服务中心", code
        )["api_key"]
        for name, code in (("home", region), ("away", elsewhere))
    }
    home = gateway.client(None, api_key=keys["home"])
    away = gateway.client(None, api_key=keys["away"])
    assert home.lookup("population.basic", adult["id_number"], ["gender"], purpose=PURPOSE).records
    outside = expect_error(
        lambda: away.lookup("population.basic", adult["id_number"], ["gender"], purpose=PURPOSE),
        grpc.StatusCode.NOT_FOUND,
        "SUBJECT_NOT_FOUND",
    )
    # The answer says it covers only the caller's region, and is the same for a subject
    # that is nowhere in the pool: existence outside the region is not revealed.
    body = "51322419990101999"
    nobody = body + ric.calc_check_digit(body + "0")
    absent = expect_error(
        lambda: away.lookup("population.basic", nobody, ["gender"], purpose=PURPOSE),
        grpc.StatusCode.NOT_FOUND,
        "SUBJECT_NOT_FOUND",
    )
    prefix = outside.metadata["region_prefix"]
    assert elsewhere.startswith(prefix) and f"within region {prefix}" in outside.message
    assert "this caller may see" in outside.message
    assert (outside.message, outside.metadata.get("region_prefix")) == (
        absent.message,
        absent.metadata.get("region_prefix"),
    )


def test_batch_lookup_streams_every_subject_in_order(gateway: Harness) -> None:
    adult, minor = gateway.demo["adult_resident"], gateway.demo["minor"]
    absent = "51322119990101999" + ric.calc_check_digit("51322119990101999" + "0")
    with gateway.client("agency-civil") as gw:
        items = list(
            gw.batch_lookup(
                "population.basic",
                [adult["id_number"], absent, minor["id_number"]],
                ["gender"],
                purpose=PURPOSE,
            )
        )
    assert [i.index for i in items] == [0, 1, 2]
    assert [i.found for i in items] == [True, False, True]
    assert items[0].records[0]["gender"].value == adult["gender"]


@pytest.mark.requirement("R13")
def test_batch_lookup_rejects_the_whole_batch_on_one_bad_key(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("agency-civil") as gw:
        expect_error(
            lambda: list(
                gw.batch_lookup(
                    "population.basic", [adult["id_number"], "not-an-id"], purpose=PURPOSE
                )
            ),
            INVALID,
            "ID_NUMBER_LENGTH",
            ["subject_keys[1]"],
        )


@pytest.mark.requirement("R1")
def test_catalog_lists_classes_and_legal_basis(gateway: Harness) -> None:
    with gateway.client("public-portal") as gw:
        names = [d.name for d in gw.list_datasets()]
        sa = gw.get_dataset("social_assistance.recipient")
        expect_error(
            lambda: gw.get_dataset("no.such"), grpc.StatusCode.NOT_FOUND, "DATASET_NOT_FOUND"
        )
    assert "population.basic" in names and len(names) == 5
    assert sa.class_reason and sa.legal_basis and sa.provider == "县民政局"
    assert [f.name for f in sa.fields][:2] == ["id_number", "name"]


@pytest.mark.requirement("R7")
def test_free_text_is_desensitized_entity_by_entity(gateway: Harness) -> None:
    """credit.record.content leaves through pii_text: names, ID numbers and phones inside it are masked."""
    entity = gateway.demo["active_entity"]
    body = "51322119800101123"
    id_number = body + ric.calc_check_digit(body + "0")
    content = f"当事人（法定代表人：张建国，身份证号{id_number}，联系电话13912345678）未按规定公示年度报告，责令限期改正。"
    gateway.parts.pool.write_batch(
        "credit.record",
        [
            {
                "uscc": entity["uscc"],
                "record_type": "行政处罚",
                "decision_no": "汶市监罚〔2026〕17号",
                "authority": "汶川县市场监督管理局",
                "decided_on": "2026-03-02",
                "content": content,
                "status": "有效",
            }
        ],
    )
    with gateway.client("agency-civil") as gw:
        r = gw.lookup(
            "credit.record", entity["uscc"], ["decision_no", "content"], purpose="信用监管"
        )
    (rec,) = r.records
    text = rec["content"].value
    assert rec["content"].treatment == "pii_text"
    assert rec["decision_no"].value == "汶市监罚〔2026〕17号"
    for raw in ("张建国", id_number, "13912345678"):
        assert raw not in text
    assert "未按规定公示年度报告" in text and text.startswith("当事人")
