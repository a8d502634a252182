"""One keyring per database: a node whose keyring differs from the one the database was
written with is refused at `init` and `serve` with a message naming the problem (never a
half-started node); after `keys rotate`, nodes with the rotated keyring start and a stale
copy from before the rotation is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support import free_port


def _govgw(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def _refused(done: subprocess.CompletedProcess, *phrases: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    for phrase in phrases:
        assert phrase in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.requirement("R12")
def test_a_node_with_another_keyring_is_refused_and_a_rotation_is_followed(
    pg_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "GOVGW_DATABASE_URL": pg_url}
    env.pop("GOVGW_KEYRING_FILE", None)
    env.pop("GOVGW_REDIS_URL", None)
    a, b = tmp_path / "a", tmp_path / "b"
    assert _govgw(env, "init", "--data-dir", str(a)).returncode == 0  # records its keyring

    # B makes a keyring of its own: refused at init and at serve, naming the fix.
    _refused(
        _govgw(env, "init", "--data-dir", str(b)),
        "this node's keyring (fingerprint", "differs from the one the database was written with",
        "set GOVGW_KEYRING_FILE to the shared keyring",
    )  # fmt: skip
    port = free_port()
    served = _govgw(env, "serve", "--data-dir", str(b), "--listen", f"127.0.0.1:{port}")
    _refused(served, "differs from the one the database was written with")
    assert "govgw serving" not in served.stdout

    # With the shared keyring B joins.
    shared = {**env, "GOVGW_KEYRING_FILE": str(a / "keys" / "keyring.json")}
    assert _govgw(shared, "init", "--data-dir", str(tmp_path / "c")).returncode == 0

    # A rotation records the new pool key version: the rotated keyring starts, a stale
    # copy from before the rotation is refused.
    stale = tmp_path / "stale-keyring.json"
    shutil.copy(a / "keys" / "keyring.json", stale)
    rotated = _govgw(env, "keys", "rotate", "--data-dir", str(a), "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["new_version"] == 2
    assert _govgw(shared, "init", "--data-dir", str(tmp_path / "d")).returncode == 0
    _refused(
        _govgw({**env, "GOVGW_KEYRING_FILE": str(stale)}, "init", "--data-dir", str(tmp_path / "e")),
        "pool key version 2", "rotation happened elsewhere", "GOVGW_KEYRING_FILE",
    )  # fmt: skip

    # Fingerprints only: no key material of the keyring is in the database.
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT kind, version, fingerprint FROM govgw.keyring_fingerprints ORDER BY 1, 2"
        ).fetchall()
    assert [(k, v) for k, v, _ in rows] == [("deployment", 0), ("pool", 1), ("pool", 2)]
    ring = json.loads((a / "keys" / "keyring.json").read_text())
    material = [*ring["keys"].values(), *(k["data"] for k in ring["pool_keys"])]
    material += [k["index"] for k in ring["pool_keys"]]
    assert not any(m in fp or fp in m for m in material for _, _, fp in rows)
