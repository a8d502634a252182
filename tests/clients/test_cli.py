"""The `govgw` command forms the README documents, run as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from stdnum.cn import ric

from contract.jose import b64url, b64url_decode, jcs
from gateway.audit import verify_chain
from tests.support import free_port, serve_subprocess

PURPOSE = "户籍业务办理"


def govgw(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "clients.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"govgw {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def person(order: int, name: str) -> dict[str, str]:
    body = f"51322119850315{order:03d}"
    id_number = body + ric.calc_check_digit(body + "0")
    return {
        "id_number": id_number,
        "name": name,
        "gender": "男" if int(id_number[16]) % 2 else "女",
        "birth_date": "1985-03-15",
        "ethnicity": "羌族",
        "household_address": "四川省阿坝藏族羌族自治州汶川县威州镇桑坪街8号",
        "region_code": "513221",
        "phone": "13980001234",
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A data dir filled through the CLI, and `govgw serve` running on it."""
    data = tmp_path_factory.mktemp("cli") / "data"
    rows = [person(1, "王建国"), person(2, "羊晓梅")]
    bad = dict(person(3, "李四"), id_number=person(3, "李四")["id_number"][:17] + "0")
    if ric.is_valid(bad["id_number"]):
        bad["id_number"] = bad["id_number"][:17] + "1"
    src = data.parent / "population.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [*rows, bad]) + "\n")
    imported = govgw(
        "pool",
        "import",
        "--data-dir",
        str(data),
        "--dataset",
        "population.basic",
        str(src),
        "--json",
        check=False,
    )
    added = govgw(
        "callers",
        "add",
        "--data-dir",
        str(data),
        "--id",
        "wenchuan-counter",
        "--kind",
        "counter",
        "--department",
        "汶川县政务服务中心",
        "--region",
        "513221",
        "--json",
    )
    key = json.loads(added.stdout)["api_key"]
    port = free_port()
    server = serve_subprocess(data, port)
    yield {
        "data": data,
        "key": key,
        "target": f"127.0.0.1:{port}",
        "rows": rows,
        "imported": imported,
        "server": server,
    }
    if server.poll() is None:
        server.kill()


def test_import_reports_rejected_rows_by_line_without_values(served) -> None:
    proc = served["imported"]
    report = json.loads(proc.stdout)
    assert proc.returncode == 1  # some rows were rejected
    assert report["accepted"] == 2
    assert [(r["line"], r["field"], r["reason"]) for r in report["rejected"]] == [
        (3, "id_number", "ID_NUMBER_CHECK_DIGIT")
    ]
    assert "李四" not in proc.stdout


def test_verify_identity_json_and_offline_receipt(served, tmp_path: Path) -> None:
    p = served["rows"][0]
    out = govgw(
        "--target",
        served["target"],
        "--api-key",
        served["key"],
        "verify",
        "identity",
        "--name",
        p["name"],
        "--id-number",
        p["id_number"],
        "--purpose",
        PURPOSE,
        "--json",
    )
    doc = json.loads(out.stdout)
    assert doc["result"] == "MATCH"
    receipt = tmp_path / "receipt.json"
    receipt.write_text(out.stdout)
    keys = tmp_path / "keys.json"
    govgw(
        "--target",
        served["target"],
        "--api-key",
        served["key"],
        "receipt",
        "keys",
        "--out",
        str(keys),
    )
    ok = govgw("receipt", "verify", "--key-file", str(keys), str(receipt), "--json")
    assert json.loads(ok.stdout)["claims"]["outcome"] == "MATCH"
    # One changed claim in the JWS payload and the receipt no longer verifies.
    head, payload, sig = doc["receipt"]["jws"].split(".")
    claims = json.loads(b64url_decode(payload, "payload")) | {"outcome": "NO_MATCH"}
    doc["receipt"]["jws"] = ".".join((head, b64url(jcs(claims)), sig))
    receipt.write_text(json.dumps(doc))
    bad = govgw("receipt", "verify", "--key-file", str(keys), str(receipt), check=False)
    assert bad.returncode == 1 and "INVALID" in bad.stderr


@pytest.mark.requirement("R7")
def test_lookup_json_masks_and_names_the_source(served) -> None:
    p = served["rows"][1]
    out = govgw(
        "--target",
        served["target"],
        "--api-key",
        served["key"],
        "lookup",
        "--dataset",
        "population.basic",
        "--subject",
        p["id_number"],
        "--fields",
        "name,phone",
        "--purpose",
        "社会保障待遇资格认证",
        "--json",
    )
    doc = json.loads(out.stdout)
    rec = doc["records"][0]
    assert rec["phone"] == {"value": "139****1234", "treatment": "mask"}
    assert rec["name"]["value"] == p["name"]
    assert doc["provenance"]["source_department"] == "县公安局"


def test_errors_print_reason_and_field(served) -> None:
    p = served["rows"][0]
    out = govgw(
        "--target",
        served["target"],
        "--api-key",
        served["key"],
        "verify",
        "identity",
        "--name",
        p["name"],
        "--id-number",
        p["id_number"][:17] + "Y",
        "--purpose",
        PURPOSE,
        "--json",
        check=False,
    )
    assert out.returncode == 1
    err = json.loads(out.stdout)["error"]
    assert err["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in err["violations"]] == ["id_number"]
    assert p["id_number"][:17] not in out.stdout + out.stderr


def test_sigterm_drains_and_leaves_a_verifiable_chain(served) -> None:
    server = served["server"]
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0
    report = verify_chain(served["data"] / "audit" / "audit.log")
    assert report.ok and not report.torn_tail and report.records >= 4
    audit = govgw("audit", "verify", "--data-dir", str(served["data"]), "--json")
    assert json.loads(audit.stdout)["ok"]
    # Editing a record is caught and the record named.
    log = served["data"] / "audit" / "audit.log"
    lines = log.read_text().splitlines(keepends=True)
    lines[1] = (
        lines[1].replace('"outcome":"OK"', '"outcome":"NO"', 1)
        if '"outcome":"OK"' in lines[1]
        else lines[1].replace("verify", "vErify", 1)
    )
    log.write_text("".join(lines))
    broken = govgw("audit", "verify", "--data-dir", str(served["data"]), check=False)
    assert broken.returncode == 1 and "record 2" in broken.stdout
