"""The pool shared by two `govgw serve` nodes (separate data directories, one PostgreSQL
database, one keyring): persons imported through the CLI on node A's directory answer
MATCH on node B, and an import made while both serve is answered by B without a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.sdk import GovgwClient
from tests.gateway.pool import person
from tests.pg_server import PostgresServer
from tests.storage.test_two_nodes import _by, _env, _serve, govgw

PURPOSE = "户籍业务办理"


@pytest.fixture(scope="module")
def nodes(
    pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], Path, int, str]]:
    """Node A's directory (for the CLI), node B's port, and a counter's API key."""
    url = pg_server.create_database("pool2")
    tmp = tmp_path_factory.mktemp("pool-nodes")
    a, b = tmp / "a", tmp / "b"
    env = _env(url, a / "keys" / "keyring.json")
    for d in (a, b):
        govgw(env, "init", "--data-dir", str(d))
    key = govgw(
        env, "callers", "add", "--data-dir", str(a), "--id", "hall-a", "--kind", "counter",
        "--department", "政务大厅", "--region", "513221",
    )["api_key"]  # fmt: skip
    procs = []
    try:
        procs = [_serve(env, d, tmp / f"{d.name}.log") for d in (a, b)]
        yield env, a, procs[1][1], key
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(10)
        pg_server.drop_database(url)


def _import(env: dict[str, str], data_dir: Path, rows: list[dict[str, str]]) -> dict:
    src = data_dir / f"import-{time.monotonic_ns()}.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return govgw(
        env, "pool", "import", "--data-dir", str(data_dir), "--dataset", "population.basic",
        str(src),
    )  # fmt: skip


def _verifies(port: int, key: str, who: dict[str, str]) -> str:
    with GovgwClient(f"127.0.0.1:{port}", api_key=key) as gw:
        return gw.verify_identity(who["name"], who["id_number"], purpose=PURPOSE).result.name


def test_records_imported_on_node_a_answer_on_node_b_even_while_serving(nodes) -> None:
    env, a, port_b, key = nodes
    first = person("陈凯", order=11)
    assert _import(env, a, [first])["accepted"] == 1
    assert _verifies(port_b, key, first) == "MATCH"
    assert _verifies(port_b, key, {**first, "name": "李娜"}) == "NO_MATCH"
    # Imported while both serve: B answers from the shared rows, no restart.
    later = person("王芳", order=22)
    assert _verifies(port_b, key, later) == "NO_MATCH"
    _import(env, a, [later])
    deadline = time.monotonic() + 1.0
    assert _by(lambda: _verifies(port_b, key, later) == "MATCH", deadline)
    assert _verifies(port_b, key, first) == "MATCH"  # the earlier import is untouched
    with GovgwClient(f"127.0.0.1:{port_b}", api_key=key) as gw:  # batch items, in threads
        items = [(first["name"], first["id_number"]), ("李娜", later["id_number"])]
        got = [r.matched for r in gw.verify_identity_batch(items, purpose=PURPOSE)]
    assert got == [True, False]


def test_a_rotation_through_the_cli_re_seals_the_shared_rows_and_node_b_follows(nodes) -> None:
    env, a, port_b, key = nodes
    who = person("赵敏", order=31)
    _import(env, a, [who])
    rows = govgw(env, "pool", "stats", "--data-dir", str(a))["population.basic"]["rows"]
    doc = govgw(env, "keys", "rotate", "--data-dir", str(a))
    assert doc["rows_moved_total"] == rows  # every shared row, whichever node imported it
    assert _verifies(port_b, key, who) == "MATCH"  # B reads them with the shared key file
