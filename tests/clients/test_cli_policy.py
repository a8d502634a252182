"""`govgw policy ...` run as an administrator runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from contract import signing
from gateway import admin
from tests.gateway.policy.opa_double import OpaDouble
from tests.support import make_data_dir, start

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PHONE_MASK = '"share": {"operator": "mask", "params": {"keep_first": 3, "keep_last": 4}}'


def govgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_check_names_file_line_and_rule(tmp_path: Path) -> None:
    ok = govgw("policy", "check", str(POLICIES))
    assert ok.returncode == 0 and ok.stdout.strip().endswith("OK"), ok.stderr
    bad = tmp_path / "p"
    shutil.copytree(POLICIES, bad)
    regions = bad / "regions.rego"
    regions.write_text(regions.read_text().replace("else := {}", 'else := {"t": time.now_ns()}'))
    cat = json.loads((bad / "data" / "catalog.json").read_text())
    del cat["datasets"]["licence.business"]["fields"][1]["sensitivity"]
    (bad / "data" / "catalog.json").write_text(json.dumps(cat, ensure_ascii=False, indent=1))
    r = govgw("policy", "check", str(bad))
    assert r.returncode == 1
    line = next(
        i for i, ln in enumerate(regions.read_text().splitlines(), 1) if "time.now_ns" in ln
    )
    assert f"regions.rego:{line} (rule constraints): builtin: calls forbidden builtin" in r.stdout
    assert (
        "data/catalog.json:" in r.stdout
        and '(rule datasets["licence.business"].fields[1].sensitivity): data:' in r.stdout
    )
    doc = json.loads(govgw("policy", "check", str(bad), "--json").stdout)
    assert not doc["valid"] and {p["kind"] for p in doc["problems"]} == {"builtin", "data"}


def test_test_prints_each_test_and_coverage_and_enforces_the_minimum(tmp_path: Path) -> None:
    r = govgw("policy", "test", str(POLICIES), "--min-coverage", "90")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS  govgw.share_test." in r.stdout
    assert "100.0%    share.rego" in r.stdout
    assert "tests passed; rule coverage 100.0%" in r.stdout
    low = tmp_path / "p"
    shutil.copytree(POLICIES, low)
    (low / "extra.rego").write_text(
        "package govgw.extra\n\nimport rego.v1\n\nodd if {\n\tinput.n == 1\n}\n"
    )
    r = govgw("policy", "test", str(low), "--min-coverage", "100")
    assert r.returncode == 1 and "(below --min-coverage 100%)" in r.stdout
    assert "extra.rego         6" in r.stdout or "extra.rego" in r.stdout
    assert govgw("policy", "test", str(low)).returncode == 0


def test_test_on_an_opa_server_gives_the_same_answers() -> None:
    with OpaDouble() as opa:
        r = govgw("policy", "test", str(POLICIES), "--opa-url", opa.url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same answers as regorus" in r.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("cli-policy") / "data"
    keys, demo = make_data_dir(data_dir, persons=20, entities=5)
    keys["admin"] = admin.callers_add(data_dir, "policy-admin", "admin", "大数据局", "513200")[
        "api_key"
    ]
    h = start(data_dir, keys, demo)
    yield h
    h.stop()


def test_sign_activate_impact_versions_and_rollback(served, tmp_path: Path) -> None:
    h = served
    remote = ("--target", h.target, "--api-key", h.keys["admin"])
    cand = tmp_path / "cand"
    shutil.copytree(POLICIES, cand)
    cat = cand / "data" / "catalog.json"
    cat.write_text(cat.read_text().replace(PHONE_MASK, '"share": {"operator": "keep"}', 1))
    shutil.rmtree(cand / "tests")

    with h.client("agency-civil") as c:
        c.lookup(
            "population.basic",
            h.demo["adult_resident"]["id_number"],
            ["phone"],
            purpose="社会保障待遇资格认证",
        )
    r = govgw(*remote, "policy", "impact", "--candidate", str(cand), "--since", "1h")
    assert r.returncode == 0, r.stderr
    assert "field_unmasked 1" in r.stdout and "population.basic" in r.stdout

    keys = tmp_path / "keys"
    assert govgw("policy", "keygen", "--key-id", "alice", "--out", str(keys)).returncode == 0
    r = govgw(
        "policy", "trust", "--data-dir", str(h.data_dir), "--key-id", "alice",
        "--public-key", str(keys / "alice.pub"), "--require-signatures",
    )  # fmt: skip
    assert r.returncode == 0 and "signatures required; trusted keys: alice" in r.stdout

    r = govgw(*remote, "policy", "activate", "--candidate", str(cand), "--reason", "未签名")
    assert r.returncode == 1 and "FAILED_PRECONDITION SIGNATURE_REQUIRED" in r.stderr
    r = govgw(
        *remote, "policy", "activate", "--candidate", str(cand), "--reason", "电话不再脱敏",
        "--sign-key", str(keys / "alice.key"), "--key-id", "alice",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("activated pv-") and "history #2" in r.stdout

    listing = json.loads(govgw(*remote, "policy", "versions", "--json").stdout)
    active = next(v for v in listing["versions"] if v.get("active"))
    assert active["signed_by"] == "alice" and active["author"] == "policy-admin"
    assert [e["action"] for e in listing["history"]] == ["baseline", "activate"]
    human = govgw(*remote, "policy", "versions").stdout
    assert "signatures required" in human and "电话不再脱敏" in human

    govgw("policy", "trust", "--data-dir", str(h.data_dir), "--allow-unsigned")
    r = govgw(*remote, "policy", "rollback", "--reason", "回到基线")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"rolled back to {listing['history'][0]['version']}")


@pytest.mark.requirement("R12")
def test_keygen_makes_an_sm2_administrator_key_the_trust_store_accepts(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    r = govgw(
        "policy", "keygen", "--key-id", "sam", "--algorithm", "sm2", "--out", str(keys), "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["algorithm"] == "sm2"
    assert (keys / "sam.key").stat().st_mode & 0o777 == 0o600
    key = signing.load_private_pem((keys / "sam.key").read_bytes())
    public = signing.load_public_pem((keys / "sam.pub").read_bytes())
    assert signing.algorithm_of(key) == signing.algorithm_of(public) == "sm2"
    data = tmp_path / "data"
    admin.init(data)
    r = govgw(
        "policy",
        "trust",
        "--data-dir",
        str(data),
        "--key-id",
        "sam",
        "--public-key",
        str(keys / "sam.pub"),
    )
    assert r.returncode == 0 and "trusted keys: sam" in r.stdout, r.stderr
    bad = govgw("policy", "keygen", "--key-id", "x", "--algorithm", "rsa", "--out", str(keys))
    assert bad.returncode == 2 and "invalid choice: 'rsa'" in bad.stderr
