"""`govgw mask text` and `govgw keys`/`init --crypto` as a person runs them: real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GOVGW = [sys.executable, "-m", "clients.cli"]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GOVGW, *args], input=stdin, capture_output=True, text=True, timeout=120)


def test_mask_text_one_line_out_per_line_in_order() -> None:
    lines = [
        "当事人张三（身份证号513221198001011230）于2023年3月到场。",
        "",
        "订单号2023112012345678，无个人信息。",
        "联系人李雷电话13800001234",
    ]
    done = run("mask", "text", "--field", "credit.record.content", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout.split("\n")
    assert out[-1] == "" and len(out) == len(lines) + 1
    assert out[0] == "当事人张*（身份证号513221********1230）于2023年3月到场。"
    assert out[1] == ""
    assert out[2] == lines[2]
    assert out[3] == "联系人李*电话138****1234"


def test_mask_text_json_reports_entities_without_values() -> None:
    text = "联系人李雷电话13800001234"
    done = run("mask", "text", "--json", stdin=text + "\n")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["text"] == "联系人**电话***********"
    assert [(e["type"], text[e["start"] : e["end"]], e["operator"]) for e in doc["entities"]] == [
        ("PERSON", "李雷", "mask"),
        ("PHONE_NUMBER", "13800001234", "mask"),
    ]
    assert "13800001234" not in done.stdout and "李雷" not in done.stdout


def test_mask_text_json_shows_the_lower_score_of_a_mistyped_id_number() -> None:
    lines = ["身份证号码513221198604120891与系统不符", "核对5132 2119 8604 1208 90，QQ：12345678"]
    done = run("mask", "text", "--json", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert docs[0]["text"] == "身份证号码******************与系统不符"
    assert [(e["type"], e["score"]) for e in docs[0]["entities"]] == [("ID_NUMBER", 0.9)]
    assert docs[1]["text"] == "核对**********************，QQ：********"
    assert [(e["type"], e["score"]) for e in docs[1]["entities"]] == [
        ("ID_NUMBER", 1.0),
        ("QQ_NUMBER", 0.98),
    ]
    assert "1208" not in done.stdout and "12345678" not in done.stdout


def test_mask_text_refuses_bad_rules_naming_the_param() -> None:
    done = run(
        "mask", "text", "--params", '{"entities": {"FOO": {"operator": "mask"}}}', stdin="x\n"
    )
    assert done.returncode == 1
    assert "entities" in done.stderr and "FOO" in done.stderr
    done = run("mask", "text", "--field", "population.basic.name", stdin="x\n")
    assert done.returncode == 1 and "not pii_text" in done.stderr


def test_init_crypto_sm_and_keys_rotate(tmp_path: Path) -> None:
    d = str(tmp_path / "data")
    done = run("init", "--data-dir", d, "--crypto", "sm", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["suite"] == "sm4-gcm/hmac-sm3"
    done = run("init", "--data-dir", d, "--crypto", "aes")
    assert done.returncode == 1 and "sm4-gcm/hmac-sm3" in done.stderr
    assert (
        run("pool", "seed", "--data-dir", d, "--persons", "30", "--entities", "5").returncode == 0
    )
    done = run("keys", "rotate", "--data-dir", d, "--crypto", "aes", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["new_version"] == 2 and report["suite"] == "aes-gcm/hmac-sha256"
    assert report["rows_moved_total"] >= 30
    status = json.loads(run("keys", "status", "--data-dir", d, "--json").stdout)
    assert status["suite"] == "sm4-gcm/hmac-sm3"  # pseudonyms and audit hashes keep theirs
    assert [k["version"] for k in status["pool_keys"]] == [2]
    assert [r["version"] for r in status["retired"]] == [1]
    stats = json.loads(run("pool", "stats", "--data-dir", d, "--json").stdout)
    assert stats["population.basic"]["rows"] == 30
