"""Policy versions on PostgreSQL through two `govgw serve` nodes (separate data
directories, one database, one keyring): a version activated through node A — by
PolicyAdmin or the `govgw policy` CLI — is served by node B, which sees the decision
change; a rollback reaches B within 1 s; and policy impact on B replays its calls
with the grants the nodes share (added through the CLI on A's directory)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from clients.sdk import GovgwClient, GovgwClientError, PolicyAdminClient
from tests.pg_server import PostgresServer
from tests.storage.test_two_nodes import _by, _env, _serve, govgw

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DS = "social_assistance.recipient"  # conditional: shared only under a grant
PURPOSE = "最低生活保障资格复核"
ABSENT = "11010519491231002X"  # a well-formed ID number nobody in the pool has
USABLE = '\tg.status == "active"\n\texpiry_ns(g) > now_ns\n'


class Nodes:
    def __init__(self, env: dict[str, str], dirs: list[Path], ports: list[int], keys: dict) -> None:
        self.env, self.dirs, self.ports, self.keys = env, dirs, ports, keys
        self.clients: list[GovgwClient] = []

    def client(self, node: int, caller: str) -> GovgwClient:
        c = GovgwClient(f"127.0.0.1:{self.ports[node]}", api_key=self.keys[caller])
        self.clients.append(c)
        return c

    def admin(self, node: int) -> PolicyAdminClient:
        c = PolicyAdminClient(
            f"127.0.0.1:{self.ports[node]}", api_key=self.keys["root"], timeout_s=180
        )
        self.clients.append(c)
        return c

    def cli(self, node: int, *args: str) -> dict:
        target = ["--target", f"127.0.0.1:{self.ports[node]}", "--api-key", self.keys["root"]]
        target += ["--timeout", "50"]  # an activation checks the version in a child first
        return govgw(self.env, *target, *args)

    def served(self, node: int) -> str:
        """The policy version node `node` answers with (its catalog's, swapped with it)."""
        return self.client(node, "agency-mz").list_datasets().policy_version

    def decision(self, node: int) -> str:
        """'allowed' when node `node` lets the agency look the subject up, else the reason."""
        try:
            self.client(node, "agency-mz").lookup(DS, ABSENT, purpose=PURPOSE)
        except GovgwClientError as e:
            if e.code == grpc.StatusCode.NOT_FOUND:
                return "allowed"  # the plan allowed it; the subject is not in the pool
            assert e.code == grpc.StatusCode.PERMISSION_DENIED, e
            return e.reason
        return "allowed"


@pytest.fixture(scope="module")
def no_grants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policy, except that no grant is ever usable."""
    d = tmp_path_factory.mktemp("candidates") / "no-grants"
    shutil.copytree(POLICIES, d)
    rego = d / "grants.rego"
    assert USABLE in rego.read_text()
    rego.write_text(rego.read_text().replace(USABLE, '\tg.status == "never"\n', 1))
    shutil.rmtree(d / "tests")  # the shipped tests pin grants that work
    (d / "tests").mkdir()
    (d / "tests" / "smoke_test.rego").write_text(
        "package govgw.smoke_test\nimport rego.v1\ntest_known if data.govgw.callers.kinds\n"
    )
    return d


@pytest.fixture(scope="module")
def nodes(pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    url = pg_server.create_database("policy")
    root = tmp_path_factory.mktemp("policy-nodes")
    dirs = [root / "a", root / "b"]
    env = _env(url, dirs[0] / "keys" / "keyring.json")
    for d in dirs:
        govgw(env, "init", "--data-dir", str(d))
    a = str(dirs[0])
    keys = {}
    for caller, kind, dept in (("root", "admin", "州大数据局"), ("agency-mz", "agency", "民政局")):
        keys[caller] = govgw(
            env, "callers", "add", "--data-dir", a, "--id", caller, "--kind", kind,
            "--department", dept, "--region", "513221",
        )["api_key"]  # fmt: skip
    govgw(env, "grants", "add", "--data-dir", a, "--caller", "agency-mz", "--dataset", DS,
          "--fields", "assistance_type", "--purpose", PURPOSE, "--expires", "30d")  # fmt: skip
    procs = []
    try:
        ports = []
        for d in dirs:
            proc, port = _serve(env, d, root / f"{d.name}.log")
            procs.append(proc)
            ports.append(port)
        n = Nodes(env, dirs, ports, keys)
        yield n
        for c in n.clients:
            c.close()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        pg_server.drop_database(url)


def test_impact_on_a_node_replays_with_the_grants_the_nodes_share(
    nodes: Nodes, no_grants: Path
) -> None:
    """The grant was added through the CLI on A's directory: B's data directory has no
    grants file, and B's impact report still replays B's calls with it."""
    assert not (nodes.dirs[1] / "grants.json").exists()
    for _ in range(3):
        assert nodes.decision(1) == "allowed"  # B enforces the shared grant
    r = nodes.admin(1).policy_impact(no_grants, window_s=3600, max_examples=1)
    # Replayed with the grant, the served policy decides as recorded; the candidate,
    # which honours no grant, would refuse the three lookups.
    assert r.recorded_differs == 0
    assert r.totals.get("allow_to_deny") == 3
    assert {(g.change, g.dataset, g.caller, g.count) for g in r.groups} >= {
        ("allow_to_deny", DS, "agency-mz", 3)
    }


@pytest.mark.requirement("R10")
def test_a_version_activated_through_one_node_is_served_by_the_other(
    nodes: Nodes, no_grants: Path
) -> None:
    shipped = nodes.served(1)
    assert nodes.decision(1) == "allowed"
    act = nodes.admin(0).activate_policy(candidate=no_grants, reason="停止按授权共享（测试）")
    activated = time.monotonic()
    candidate = act.version.version
    assert act.serving_version == candidate and nodes.served(0) == candidate
    # B checks a version stored by another node in a child process before serving it;
    # it started when A stored the version, so B switches about when A does.
    assert _by(lambda: nodes.served(1) == candidate, activated + 60)
    print(f"node B served the new version {time.monotonic() - activated:.2f} s after A's answer")
    assert nodes.decision(1) == "GRANT_REQUIRED"  # B decides with it
    # A rollback through the CLI (to a version B has served) reaches B within 1 s.
    back = nodes.cli(0, "policy", "rollback", "--reason", "恢复按授权共享")
    deadline = time.monotonic() + 1.0
    assert back["version"]["version"] == shipped
    assert _by(lambda: nodes.decision(1) == "allowed", deadline)
    assert nodes.served(1) == shipped
    # And activating the stored version again by its id, through the CLI, too.
    nodes.cli(0, "policy", "activate", "--version", candidate, "--reason", "再次停止（测试）")
    deadline = time.monotonic() + 1.0
    assert _by(lambda: nodes.decision(1) == "GRANT_REQUIRED", deadline)
    listing = nodes.cli(1, "policy", "versions")  # B lists the shared history
    assert listing["active_version"] == candidate and listing["serving_version"] == candidate
    assert [e["action"] for e in listing["history"]] == [
        "baseline",
        "activate",
        "rollback",
        "activate",
    ]
