"""`govgw subjects ...`: every step of the subject-rights flows, with --json, against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from clients.cli import main
from gateway import admin
from gateway.access.subject_tokens import new_issuer_key
from tests.support import Harness, make_data_dir, start


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("cli-subjects")
    keys, demo = make_data_dir(data_dir, persons=20, entities=8)
    keys["agency-amr"] = admin.callers_add(
        data_dir,
        "agency-amr",
        "agency",
        "汶川县市场监督管理局",
        "513221",
        provider_ids=("county.market-regulation",),
    )["api_key"]
    # The real clock: `govgw subjects token` signs with the time of day.
    h = start(data_dir, keys, demo, sweep_interval_s=0)
    yield h
    h.stop()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def as_(gw: Harness, caller: str) -> list[str]:
    return ["--target", gw.target, "--api-key", gw.keys[caller]]


def test_subject_and_provider_verbs(gw: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    ent = gw.demo["active_entity"]["uscc"]
    d = str(gw.data_dir)
    code, out, _ = run(capsys, "subjects", "token", "--subject", ent, "--data-dir", d, "--json")
    assert code == 0
    tok = json.loads(out)["token"]
    public, amr = as_(gw, "public-portal"), as_(gw, "agency-amr")
    subj = ["--subject-token", tok, "--json"]

    code, out, _ = run(capsys, *public, "subjects", "correct", "--dataset", "legal_entity.basic",
                       "--field", "registered_address", "--statement", "注册地址已变更为威州镇",
                       *subj)  # fmt: skip
    assert code == 0
    cid = json.loads(out)["id"]
    code, out, _ = run(capsys, *public, "subjects", "corrections", *subj)
    assert [c["id"] for c in json.loads(out)["items"]] == [cid]
    code, out, _ = run(capsys, *amr, "subjects", "corrections", "--provider", "--json")
    (seen,) = json.loads(out)["items"]
    assert seen["subject_key"] == ent and seen["status"] == "PENDING"
    # The provider reads what the citizen stated in the human output too.
    code, out, _ = run(capsys, *amr, "subjects", "corrections", "--provider")
    assert code == 0 and f"{cid} statement: 注册地址已变更为威州镇" in out
    code, out, _ = run(capsys, *amr, "subjects", "extend", cid, "--reason", "需现场核查", "--json")
    assert code == 0 and json.loads(out)["extended"] is True
    code, out, err = run(capsys, *amr, "subjects", "extend", cid, "--reason", "再次", "--json")
    assert code == 1 and json.loads(out)["error"]["reason"] == "DEADLINE_NOT_EXTENDABLE"
    code, out, _ = run(capsys, *amr, "subjects", "answer", cid, "--corrected", "--note", "已更正",
                       "--json")  # fmt: skip
    assert json.loads(out)["status"] == "CORRECTED"

    code, out, _ = run(capsys, *public, "subjects", "withdraw", "--dataset", "legal_entity.basic",
                       "--reason", "法定代表人信息侵权", *subj)  # fmt: skip
    wid = json.loads(out)["id"]
    code, out, _ = run(capsys, *amr, "subjects", "withdrawals", "--provider", "--json")
    assert [w["id"] for w in json.loads(out)["items"]] == [wid]
    code, out, _ = run(capsys, *amr, "subjects", "review", wid, "--reinstate", "--reason",
                       "信息准确", "--json")  # fmt: skip
    assert json.loads(out)["status"] == "REINSTATED"
    code, out, _ = run(capsys, *public, "subjects", "withdrawals", *subj)
    assert json.loads(out)["items"][0]["review_reason"] == "信息准确"
    # Human output: a table of who used the data; the provider's handling is there.
    code, out, _ = run(capsys, *public, "subjects", "usage", "--subject-token", tok)
    assert code == 0 and "agency-amr" in out and "subject.review" in out
    code, out, _ = run(capsys, *public, "subjects", "usage", *subj)
    assert {u["action"] for u in json.loads(out)["uses"]} == {"subject.review"}
    # No token: a clear local error, no call.
    code, out, err = run(capsys, *public, "subjects", "corrections", "--json")
    assert code == 1 and "GOVGW_SUBJECT_TOKEN" in err


def test_issuers_add_list_remove(
    gw: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = str(gw.data_dir)
    private, public = new_issuer_key()
    (tmp_path / "idp.pub").write_text(public)
    (tmp_path / "idp.pem").write_text(private)
    code, out, _ = run(capsys, "subjects", "issuers", "add", "sc-idp", "--public-key",
                       str(tmp_path / "idp.pub"), "--data-dir", d, "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["name"] == "sc-idp"
    code, out, _ = run(capsys, "subjects", "issuers", "list", "--data-dir", d, "--json")
    assert [i["name"] for i in json.loads(out)] == ["demo-idp", "sc-idp"]
    code, out, _ = run(capsys, "subjects", "issuers", "add", "sc-idp", "--public-key",
                       str(tmp_path / "idp.pub"), "--data-dir", d, "--json")  # fmt: skip
    assert code == 1 and json.loads(out)["error"]["reason"] == "ISSUER_REFUSED"
    # A token of the new issuer works at once; removed, it is refused on the next call.
    pid = gw.demo["adult_resident"]["id_number"]
    code, out, _ = run(capsys, "subjects", "token", "--subject", pid, "--issuer", "sc-idp",
                       "--issuer-key", str(tmp_path / "idp.pem"), "--ttl", "5m", "--json")  # fmt: skip
    tok = json.loads(out)["token"]
    code, out, _ = run(capsys, *as_(gw, "public-portal"), "subjects", "corrections",
                       "--subject-token", tok, "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["items"] == []
    code, _, _ = run(capsys, "subjects", "issuers", "remove", "sc-idp", "--data-dir", d)
    assert code == 0
    code, out, _ = run(capsys, *as_(gw, "public-portal"), "subjects", "corrections",
                       "--subject-token", tok, "--json")  # fmt: skip
    assert code == 1 and json.loads(out)["error"]["reason"] == "SUBJECT_ISSUER_UNKNOWN"
    code, out, err = run(
        capsys, "subjects", "token", "--subject", pid, "--ttl", "ten", "--data-dir", d
    )
    assert code == 1 and "ttl" in err


def test_the_command_runs_as_installed(gw: Harness) -> None:
    """One round trip through a separate process, as a user types it."""
    pid = gw.demo["minor"]["id_number"]
    d = str(gw.data_dir)
    mint = subprocess.run(
        [sys.executable, "-m", "clients.cli", "subjects", "token", "--subject", pid,
         "--data-dir", d, "--azp", "counter-wenchuan"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    listed = subprocess.run(
        [sys.executable, "-m", "clients.cli", *as_(gw, "counter-wenchuan"), "subjects", "usage",
         "--json"],
        capture_output=True, text=True, timeout=60, check=True,
        env={"GOVGW_SUBJECT_TOKEN": mint.stdout.strip(), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    doc = json.loads(listed.stdout)
    assert doc["uses"] == [] and doc["request_id"].startswith("req_")  # nobody used it yet


def test_records_json_and_human_tables(gw: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    person = gw.demo["assistance_recipient"]
    pid, d = person["id_number"], str(gw.data_dir)
    code, out, _ = run(capsys, "subjects", "token", "--subject", pid, "--data-dir", d, "--json")
    tok = json.loads(out)["token"]
    public = as_(gw, "public-portal")
    code, out, _ = run(capsys, *public, "subjects", "correct", "--dataset", "population.basic",
                       "--field", "household_address", "--statement", "地址已迁至威州镇",
                       "--subject-token", tok, "--json")  # fmt: skip
    assert code == 0

    code, out, _ = run(capsys, *public, "subjects", "records", "--subject-token", tok, "--json")
    assert code == 0
    doc = json.loads(out)
    assert [x["dataset"] for x in doc["datasets"]] == [
        "population.basic",
        "social_assistance.recipient",
    ]
    fields = {f["name"]: f for f in doc["datasets"][0]["records"][0]["fields"]}
    assert fields["name"]["value"] == person["name"]
    assert fields["household_address"]["correction_pending_since"]
    assert doc["datasets"][0]["provenance"]["source_department"] == "县公安局"

    # Human: one table per dataset, the disputed field marked, the others not.
    code, out, _ = run(capsys, *public, "subjects", "records", "--subject-token", tok,
                       "--dataset", "population.basic")  # fmt: skip
    assert code == 0
    assert "population.basic" in out and "social_assistance.recipient" not in out
    assert "provider 县公安局" in out
    lines = out.splitlines()
    address = next(line for line in lines if " household_address " in f" {line} ")
    name = next(line for line in lines if line.split()[:1] == ["name"])
    assert address.startswith("*") and "correction pending since" in address
    assert person["name"] in name and not name.startswith("*")

    # A refusal: --json carries the reason, exit 1.
    code, out, _ = run(capsys, *public, "subjects", "records", "--subject-token", tok,
                       "--dataset", "legal_entity.basic", "--json")  # fmt: skip
    assert code == 1 and json.loads(out)["error"]["reason"] == "DATASET_SUBJECT_KIND"


def test_records_of_a_subject_the_pool_does_not_hold(
    gw: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.gateway.pool import id_number

    absent = id_number("513221", date(1931, 2, 3), 987)
    code, out, _ = run(capsys, "subjects", "token", "--subject", absent, "--data-dir",
                       str(gw.data_dir), "--json")  # fmt: skip
    tok = json.loads(out)["token"]
    code, out, _ = run(capsys, *as_(gw, "counter-wenchuan"), "subjects", "records",
                       "--subject-token", tok)  # fmt: skip
    assert code == 0 and out.startswith("the pool holds no record of you")
