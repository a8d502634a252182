"""ConflictService end to end (R16): the report for the coordinating department, on a real server."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from clients.cli import main
from clients.sdk.types import ConflictVerdict
from gateway import admin, demo
from gateway.config import Layout
from tests.support import Harness, expect_error, make_data_dir, start

DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
COORDINATOR = "coordinator"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("conflicts")
    keys, demo = make_data_dir(data_dir, persons=300, entities=10)
    keys[COORDINATOR] = admin.callers_add(data_dir, COORDINATOR, "admin", "州大数据局", "513200")[
        "api_key"
    ]
    h = start(data_dir, keys, demo)
    yield h
    h.stop()


def planted(h: Harness) -> set[tuple[str, str]]:
    ring = h.parts.keyring
    return {
        (ring.subject_hash(p["id_number"]), p["attribute"]) for p in h.demo["planted_conflicts"]
    }


def entries(conflicts: Any) -> set[tuple[str, str]]:
    return {(c.subject_hash, c.attribute) for c in conflicts}


def raw_values(h: Harness) -> set[str]:
    """Every raw name, birth date, address and ID number of the pool's persons."""
    out: set[str] = set()
    for ds in ("population.basic", "social_assistance.recipient"):
        for row in h.parts.pool.iter_rows(ds):
            out |= {row[k] for k in ("id_number", "name", "birth_date", "household_address")}
    return out - {""}


@pytest.mark.requirement("R16")
def test_the_planted_conflicts_are_reported_exactly(gw: Harness) -> None:
    with gw.client(COORDINATOR) as c:
        page = c.list_conflicts()
    assert page.next_page_token == ""
    assert entries(page.conflicts) == planted(gw)
    assert len(page.conflicts) == 3
    assert list(page.datasets) == ["social_assistance.recipient", "population.basic"]
    assert page.subjects_scanned == gw.parts.pool.count("social_assistance.recipient")
    by_attr = {c.attribute: c for c in page.conflicts}
    demo = {p["attribute"]: p for p in gw.demo["planted_conflicts"]}
    for attribute, c in by_attr.items():
        key = demo[attribute]["id_number"]
        assert c.subject_kind == "person"
        assert c.subject_masked == key[:6] + "*" * 8 + key[-4:]
        held = {v.dataset: v for v in c.values}
        assert set(held) == {"population.basic", "social_assistance.recipient"}
        assert held["population.basic"].provider == "县公安局"
        assert held["social_assistance.recipient"].provider == "县民政局"
        assert held["social_assistance.recipient"].field == demo[attribute]["field"]
        assert (
            held["population.basic"].value_group != held["social_assistance.recipient"].value_group
        )
        for v in c.values:
            assert v.dataset_version == gw.parts.pool.dataset_version(v.dataset)
            assert v.imported_at is not None and v.imported_at.year >= 2026
    # The masks the catalog names: the first character, the year, the county.
    name = {v.masked_value for v in by_attr["person.name"].values}
    assert len(name) == 1 and next(iter(name)).endswith("*")
    assert all(len(v.masked_value) == 4 for v in by_attr["person.birth_date"].values)
    assert all(
        v.masked_value.startswith("四川省阿坝藏族羌族自治州")
        and v.masked_value.endswith(("市", "县"))
        for v in by_attr["person.address"].values
    )
    text = str(page)
    for raw in raw_values(gw):
        assert raw not in text


def held_raw(h: Harness, attribute: str) -> dict[str, str]:
    """The planted subject's raw values of `attribute`, by dataset (for the test's own check)."""
    p = next(p for p in h.demo["planted_conflicts"] if p["attribute"] == attribute)
    field = p["field"]
    return {
        ds: h.parts.pool.read(ds, p["id_number"])[0][field]
        for ds in ("population.basic", "social_assistance.recipient")
    }


@pytest.mark.requirement("R16")
def test_the_coordinator_sees_how_each_pair_differs(gw: Harness) -> None:
    """Masked values look alike (尼*** / 尼***); the pair says what to do about them."""
    with gw.client(COORDINATOR) as c:
        page = c.list_conflicts()
    by_attr = {c.attribute: c for c in page.conflicts}
    for c in page.conflicts:
        assert len(c.differences) == 1
        d = c.differences[0]
        assert (d.first_value, d.second_value) == (1, 2)
        assert d.edit_distance > 0 and d.first_length > 0 and d.second_length > 0
    # The demo's name: a traditional form of one character, same length.
    name = by_attr["person.name"].differences[0]
    assert name.verdict == ConflictVerdict.FORMAT_ONLY
    assert list(name.equal_after) == ["variant characters"]
    assert name.edit_distance == 1 and name.first_length == name.second_length
    if name.first_length >= 4:
        assert len(name.first_positions) == 1 and not name.positions_withheld
    else:
        assert name.positions_withheld and list(name.first_positions) == []
    # The birth date, some days off: as many edits as characters differ.
    dates = held_raw(gw, "person.birth_date")
    a, b = dates["social_assistance.recipient"], dates["population.basic"]
    differing = [i + 1 for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    born = by_attr["person.birth_date"].differences[0]
    assert born.edit_distance == len(differing)
    assert list(born.first_positions) == list(born.second_positions) == differing
    assert born.verdict == (
        ConflictVerdict.SMALL_DIFFERENCE if len(differing) <= 2 else ConflictVerdict.DIFFERENT
    )
    # The address: another town, another village: different, positions shown.
    moved = by_attr["person.address"].differences[0]
    assert moved.verdict == ConflictVerdict.DIFFERENT and list(moved.equal_after) == []
    assert moved.first_positions and not moved.positions_withheld
    # Both registers came from the seeder's one import each, replacing the dataset.
    for c in page.conflicts:
        assert all(v.written_at_import for v in c.values)
        stamps = {v.imported_at for v in c.values}
        assert [v.imported_last for v in c.values] == [
            len(stamps) > 1 and v.imported_at == max(stamps) for v in c.values
        ]


@pytest.mark.requirement("R16")
def test_pages_of_one_and_the_attribute_filter(gw: Harness) -> None:
    with gw.client(COORDINATOR) as c:
        seen, token, pages = [], "", 0
        while True:
            page = c.list_conflicts(page_size=1, page_token=token)
            assert len(page.conflicts) <= 1
            seen += list(page.conflicts)
            pages += 1
            token = page.next_page_token
            if not token:
                break
        # The last page may be empty: whether subjects after the third hold
        # a conflict is only known by comparing them.
        assert pages in (3, 4) and entries(seen) == planted(gw)
        assert entries(c.conflicts_report(page_size=2)) == planted(gw)
        for attribute in ("person.name", "person.birth_date", "person.address"):
            only = c.list_conflicts(attribute=attribute)
            assert entries(only.conflicts) == {e for e in planted(gw) if e[1] == attribute}
        assert list(c.list_conflicts(attribute="entity.name").conflicts) == []


@pytest.mark.parametrize("caller", ["agency-civil", "counter-wenchuan", "public-portal"])
def test_only_the_coordinating_department_reads_it(gw: Harness, caller: str) -> None:
    with gw.client(caller) as c:
        e = expect_error(c.list_conflicts, DENIED, "COORDINATOR_REQUIRED", [])
    assert "coordinating department" in e.message


def test_bad_input_is_named_field_by_field(gw: Harness) -> None:
    with gw.client(COORDINATOR) as c:
        e = expect_error(
            lambda: c.list_conflicts(attribute="person.shoe_size"),
            INVALID,
            "UNKNOWN_ATTRIBUTE",
            ["attribute"],
        )
        assert "person.name" in e.violations[0].description
        expect_error(
            lambda: c.list_conflicts(page_size=-1), INVALID, "PAGE_SIZE_INVALID", ["page_size"]
        )
        expect_error(
            lambda: c.list_conflicts(page_token="bm90IGEgdG9rZW4"),
            INVALID,
            "PAGE_TOKEN_INVALID",
            ["page_token"],
        )
        token = c.list_conflicts(page_size=1).next_page_token
        expect_error(
            lambda: c.list_conflicts(attribute="person.name", page_token=token),
            INVALID,
            "PAGE_TOKEN_INVALID",
            ["page_token"],
        )
        both = expect_error(
            lambda: c.list_conflicts(attribute="x", page_size=-5), INVALID, "UNKNOWN_ATTRIBUTE"
        )
        assert [v.field for v in both.violations] == ["attribute", "page_size"]
    # Input is checked before the policy: a non-administrator learns nothing more.
    with gw.client("public-portal") as c:
        expect_error(
            lambda: c.list_conflicts(attribute="x"), INVALID, "UNKNOWN_ATTRIBUTE", ["attribute"]
        )


def test_the_report_is_audited_with_counts_only(gw: Harness) -> None:
    with gw.client(COORDINATOR) as c:
        c.list_conflicts(attribute="person.name")
    with gw.client("agency-civil") as c:
        expect_error(c.list_conflicts, DENIED, "COORDINATOR_REQUIRED")
    records = [r for r in gw.audit_records() if r.get("action") == "conflicts.read"]
    ok = [r for r in records if r["caller"] == COORDINATOR and r["outcome"] == "OK"]
    named = next(r for r in ok if r["details"]["attribute"] == "person.name")
    assert named["details"] == {
        "attribute": "person.name",
        "conflicts": 1,
        "subjects_scanned": gw.parts.pool.count("social_assistance.recipient"),
        "more": False,
    }
    assert named["subject"] == "" and named["decision"] == "allow"
    refused = [r for r in records if r["caller"] == "agency-civil"]
    assert refused and refused[-1]["reason"] == "COORDINATOR_REQUIRED"
    assert refused[-1]["decision"] == "deny"
    text = gw.audit_text()
    for raw in raw_values(gw):
        assert raw not in text
    for subject_hash, _ in planted(gw):  # not even the keyed hashes of the subjects listed
        assert subject_hash not in text


def cli(gw: Harness, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--target", gw.target, "--api-key", gw.keys[COORDINATOR], *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.requirement("R16")
def test_cli_report_json_csv_and_human(gw: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(gw, capsys, "conflicts", "report", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["count"] == 3
    assert {(c["subject_hash"], c["attribute"]) for c in doc["conflicts"]} == planted(gw)
    assert all(v["imported_at"].endswith("Z") for c in doc["conflicts"] for v in c["values"])
    verdicts = {c["attribute"]: c["differences"][0]["verdict"] for c in doc["conflicts"]}
    assert verdicts["person.name"] == "format only"
    assert verdicts["person.address"] == "different"
    assert verdicts["person.birth_date"] in ("small difference", "different")
    code, out, _ = cli(gw, capsys, "conflicts", "report", "--csv", "--attribute", "person.address")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and {r["dataset"] for r in rows} == {
        "population.basic",
        "social_assistance.recipient",
    }
    assert {r["attribute"] for r in rows} == {"person.address"}
    assert [(r["value"], r["compared_with"], r["verdict"]) for r in rows] == [
        ("1", "", ""),
        ("2", "1", "different"),
    ]
    code, out, _ = cli(gw, capsys, "conflicts", "report")
    assert code == 0 and out.startswith("3 conflict(s)") and "县民政局" in out
    assert "1 vs 2: format only (variant characters): distance 1" in out
    assert "1 vs 2: different: distance" in out
    code, out, err = cli(gw, capsys, "conflicts", "report", "--attribute", "x", "--json")
    assert code == 1 and json.loads(out)["error"]["reason"] == "UNKNOWN_ATTRIBUTE"
    assert "UNKNOWN_ATTRIBUTE" in err
    everything = out + err
    code, out, err = cli(gw, capsys, "conflicts", "report", "--json")
    everything += out + err
    for raw in raw_values(gw):
        assert raw not in everything


@pytest.mark.requirement("R16")
def test_cli_offline_report_reads_the_pool_and_audits_it(
    gw: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(gw.data_dir)
    assert main(["conflicts", "report", "--data-dir", data_dir, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {(c["subject_hash"], c["attribute"]) for c in doc["conflicts"]} == planted(gw)
    # The same pairs and the same words as through the gateway.
    _, out, _ = cli(gw, capsys, "conflicts", "report", "--json")
    online = {(c["subject_hash"], c["attribute"]): c for c in json.loads(out)["conflicts"]}
    for c in doc["conflicts"]:
        assert c["differences"] == online[(c["subject_hash"], c["attribute"])]["differences"]
        assert c["values"] == online[(c["subject_hash"], c["attribute"])]["values"]
    assert main(["conflicts", "report", "--data-dir", data_dir, "--attribute", "nope"]) == 1
    assert "UNKNOWN_ATTRIBUTE" in capsys.readouterr().err
    assert main(["conflicts", "report", "--data-dir", data_dir + "-missing"]) == 1
    assert "no pool" in capsys.readouterr().err
    chain = Layout(gw.data_dir).admin_audit.read_text(encoding="utf-8")
    offline = [json.loads(line) for line in chain.splitlines() if '"conflicts.read"' in line]
    assert offline[-1]["caller"] == admin.LOCAL_ADMIN
    assert offline[-1]["details"] == {"attribute": "*", "conflicts": 3, "offline": True}
    for raw in raw_values(gw):
        assert raw not in chain
    assert main(["audit", "verify", "--data-dir", data_dir, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_the_demo_banner_shows_the_coordinator_how_to_run_it(gw: Harness) -> None:
    creds = {"policy-admin": {"kind": "admin", "api_key": "k-admin"}}
    text = demo.demo_banner(gw.config, creds, gw.demo)
    assert f"--target {gw.config.listen} --api-key k-admin conflicts report" in text
    assert "conflicts report" not in demo.demo_banner(gw.config, creds, {})
