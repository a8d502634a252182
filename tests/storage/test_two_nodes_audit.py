"""Two `govgw serve` nodes on one PostgreSQL database, each with its own audit chain,
one shared audit index: a citizen's "who used my data" and a usage report on node A
see calls made on node B; `govgw audit verify` on A verifies B's chain too and names a
cut or edited one (node, file, seq); B killed with SIGKILL right after acknowledged
calls loses none of them, and the shared index catches up."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clients.sdk import GovgwClient
from gateway.access.subject_tokens import load_private_key, mint
from gateway.admin import DEMO_ISSUER
from gateway.audit import read_records
from gateway.config import Layout
from tests.pg_server import PostgresServer
from tests.storage.test_two_nodes import _env, _serve, govgw

PURPOSE = "户籍业务办理"
DATASET = "population.basic"


@dataclass
class Cluster:
    env: dict[str, str]
    dirs: dict[str, Path]
    logs: Path
    keys: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    demo: dict[str, Any] = field(default_factory=dict)

    def start(self, name: str) -> None:
        proc, port = _serve(self.env, self.dirs[name], self.logs / f"{name}.log")
        self.procs[name], self.ports[name] = proc, port

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(20)

    def client(self, name: str, caller: str) -> GovgwClient:
        return GovgwClient(f"127.0.0.1:{self.ports[name]}", api_key=self.keys[caller])

    def cli(self, *args: str, json: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", *args, *(["--json"] if json else [])],
            capture_output=True, text=True, timeout=120, env=self.env,
        )  # fmt: skip


@pytest.fixture(scope="module")
def cluster(
    pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    url = pg_server.create_database()
    root = tmp_path_factory.mktemp("two-nodes-audit")
    dirs = {"a": root / "a", "b": root / "b"}
    c = Cluster(_env(url, dirs["a"] / "keys" / "keyring.json"), dirs, root)
    try:
        for d in dirs.values():
            assert govgw(c.env, "init", "--data-dir", str(d))["node"].startswith("node-")
            # The pool is the database's: seeding both directories alike writes the same
            # rows twice.
            govgw(c.env, "pool", "seed", "--data-dir", str(d), "--persons", "20",
                  "--entities", "4", "--seed", "7")  # fmt: skip
        c.demo = json.loads((dirs["a"] / "demo.json").read_text())
        for caller, kind, dept, providers in (
            ("counter-b", "counter", "汶川县政务服务中心", []),
            ("agency-police", "agency", "汶川县公安局", ["county.public-security"]),
            ("public-portal", "public", "公众", []),
        ):
            extra = [a for p in providers for a in ("--provider-id", p)]
            c.keys[caller] = govgw(
                c.env, "callers", "add", "--data-dir", str(dirs["a"]), "--id", caller,
                "--kind", kind, "--department", dept, "--region", "513221", *extra,
            )["api_key"]  # fmt: skip
        for name in dirs:
            c.start(name)
        yield c
    finally:
        for name in list(c.procs):
            c.stop(name)
        pg_server.drop_database(url)


def _verify_on_b(c: Cluster, person: dict[str, Any], n: int) -> list[str]:
    """n acknowledged VerifyIdentity calls on node B: their request ids."""
    with c.client("b", "counter-b") as gw:
        return [
            gw.verify_identity(person["name"], person["id_number"], purpose=PURPOSE).request_id
            for _ in range(n)
        ]


def _uses_on_a(c: Cluster, person: dict[str, Any]) -> list[Any]:
    """The citizen's "who used my data", asked of node A (through the public portal)."""
    key = (c.dirs["a"] / "keys" / "demo-subject-issuer.pem").read_bytes()
    token = mint(
        load_private_key(key), issuer=DEMO_ISSUER, subject=person["id_number"],
        now=datetime.now(UTC),
    )  # fmt: skip
    with c.client("a", "public-portal") as gw:
        return list(gw.all_my_usage(token))


@pytest.mark.requirement("R8", "R17")
def test_node_a_lists_and_counts_the_calls_made_on_node_b(cluster: Cluster) -> None:
    c = cluster
    person = c.demo["adult_resident"]
    made = _verify_on_b(c, person, 2)
    listed = {u.request_id: u for u in _uses_on_a(c, person)}
    assert set(made) <= set(listed)  # the citizen asks A; the calls were made on B
    assert {listed[r].caller for r in made} == {"counter-b"}

    def counted() -> int:  # B's verifications as a usage report on A counts them
        with c.client("a", "agency-police") as gw:
            rows = gw.usage_report(DATASET).rows
        return sum(
            r.calls for r in rows if (r.caller, r.action) == ("counter-b", "verify.identity")
        )

    first = counted()
    assert first >= len(made)
    # Each of B's calls counted once, however often either node refreshed.
    assert counted() == first
    _verify_on_b(c, person, 1)
    assert counted() == first + 1


def _b_chain_records(c: Cluster) -> list[dict[str, Any]]:
    return [r for p in Layout(c.dirs["b"]).audit_files() for r in read_records(p)]


def _index_status(c: Cluster, name: str) -> dict[str, Any]:
    out = c.cli("audit", "index-status", "--data-dir", str(c.dirs[name]))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.requirement("R12")
def test_node_b_killed_right_after_acknowledged_calls_loses_none(cluster: Cluster) -> None:
    c = cluster
    person = c.demo["assistance_recipient"]
    acked = _verify_on_b(c, person, 5)
    c.stop("b", signal.SIGKILL)  # no drain, no close: only what was fsynced before the answer
    assert set(acked) <= {r.get("request_id") for r in _b_chain_records(c)}
    c.start("b")
    verified = c.cli("audit", "verify", "--data-dir", str(c.dirs["b"]))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"]
    # A's reader indexes what B's chain holds (B's directory is reachable here), so the
    # listing on A has every acknowledged call, and the shared index every record, once.
    assert set(acked) <= {u.request_id for u in _uses_on_a(c, person)}
    status = _index_status(c, "b")
    assert status["records"] == len(_b_chain_records(c)) and status["pending_bytes"] == 0


@pytest.mark.requirement("R12")
def test_audit_verify_on_a_checks_b_and_names_a_cut_or_edited_chain(cluster: Cluster) -> None:
    c = cluster
    _verify_on_b(c, c.demo["adult_resident"], 3)
    out = c.cli("audit", "verify", "--data-dir", str(c.dirs["a"]))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    node_b = (c.dirs["b"] / "node-id").read_text().strip()
    assert {n["node"]: n["reachable"] for n in report["nodes"]}[node_b] is True
    b_files = [f for f in report["files"] if f["node"] == node_b]
    assert b_files and all(f["ok"] and f["records"] > 0 for f in b_files)
    c.stop("b")  # B's chain holds still while it is cut and edited
    [chain] = [p for p in Layout(c.dirs["b"]).audit_files() if p.name != "audit-admin.log"]
    original = chain.read_bytes()
    lines = original.splitlines(keepends=True)
    try:
        chain.write_bytes(b"".join(lines[:-2]))  # the last two records cut off
        out = c.cli("audit", "verify", "--data-dir", str(c.dirs["a"]))
        assert out.returncode == 1
        doc = json.loads(out.stdout)
        # Named against the head the index recorded for B's chain: as recorded (no node
        # indexed since the cut), or as the head the index lost (A's periodic indexing
        # reads B's reachable chain and found it cut).
        head = len(lines)
        assert doc["problem"].startswith(
            (f"{node_b} {chain.name}: the index recorded head seq {head} ",
             f"{node_b} {chain.name}: the index lost its head: seq {head} ")
        ), doc["problem"]  # fmt: skip
        assert doc["first_broken_seq"] == len(lines) - 1
        text = c.cli("audit", "verify", "--data-dir", str(c.dirs["a"]), json=False)
        assert text.returncode == 1
        assert f"{chain.name}: BROKEN at seq {len(lines) - 1}" in text.stdout
        assert f"node {node_b} (host " in text.stdout
        edited = lines[1].replace(b'"counter-b"', b'"counter-x"')
        assert edited != lines[1]
        chain.write_bytes(b"".join([lines[0], edited, *lines[2:]]))
        out = c.cli("audit", "verify", "--data-dir", str(c.dirs["a"]))
        assert out.returncode == 1
        doc = json.loads(out.stdout)
        assert doc["first_broken_seq"] == 2
        assert doc["problem"] == f"{node_b} {chain.name}: hash mismatch: the record was edited"
    finally:
        chain.write_bytes(original)
