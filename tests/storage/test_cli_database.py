"""`govgw … --database-url`: two data directories (two nodes) on one database share the
caller registry and the grants through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.callers import CallerRegistry
from gateway.storage import open_storage


def govgw(*args: str, env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "clients.cli", *args, "--json"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert proc.returncode == 0, f"govgw {' '.join(args)}: {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.mark.requirement("R10")
def test_two_data_directories_on_one_database_share_callers(pg_url: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert govgw("init", "--data-dir", str(a), "--database-url", pg_url)["storage"] == "postgresql"
    ring = {"GOVGW_KEYRING_FILE": str(a / "keys" / "keyring.json")}
    joined = govgw("init", "--data-dir", str(b), env={"GOVGW_DATABASE_URL": pg_url, **ring})
    first = govgw("init", "--data-dir", str(a), "--database-url", pg_url)
    # The joining node says which keyring it took and that the database holds its
    # fingerprint: the one the first node recorded.
    assert joined["keyring"] == ring["GOVGW_KEYRING_FILE"] == first["keyring"]
    assert joined["keyring_fingerprint"] == first["keyring_fingerprint"]
    assert joined["node"] != first["node"]
    govgw(
        "callers", "add", "--data-dir", str(a), "--database-url", pg_url, "--id", "hall-1",
        "--kind", "counter", "--department", "政务大厅", "--region", "513221",
    )  # fmt: skip
    listed = govgw("callers", "list", "--data-dir", str(b), env={"GOVGW_DATABASE_URL": pg_url})
    assert [c["id"] for c in listed] == ["hall-1"]
    # Suspended through B's directory: a node on the database sees it (no file of A changed).
    node = CallerRegistry(open_storage(pg_url, a))
    assert node.get("hall-1").status == "active"
    govgw(
        "callers", "suspend", "--data-dir", str(b), "hall-1", "--reason", "复核",
        env={"GOVGW_DATABASE_URL": pg_url},
    )  # fmt: skip
    node.storage.close()
    again = CallerRegistry(open_storage(pg_url, a))
    try:
        assert again.get("hall-1").status == "suspended"
    finally:
        again.storage.close()
    # Without the URL, A's own SQLite registry knows nothing of it.
    assert CallerRegistry(open_storage("", a)).get("hall-1") is None


def test_a_bad_database_url_stops_init_and_serve_with_a_clear_error(tmp_path: Path) -> None:
    from tests.support import free_port

    govgw("init", "--data-dir", str(tmp_path))
    url = f"postgresql://govgw:s3cret-pw@127.0.0.1:{free_port()}/govgw"
    for verb in (["init"], ["serve", "--listen", f"127.0.0.1:{free_port()}"]):
        proc = subprocess.run(
            [sys.executable, "-m", "clients.cli", *verb, "--data-dir", str(tmp_path),
             "--database-url", url],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "govgw: cannot connect to the database postgresql://govgw:***@" in proc.stderr
        assert "Traceback" not in proc.stderr and "s3cret-pw" not in proc.stderr


def test_init_on_a_database_says_which_keyring_and_database(pg_url: str, tmp_path: Path) -> None:
    """The human output an operator reads when a node joins: the keyring file taken and
    the database (without its password) that holds that keyring's fingerprint."""
    proc = subprocess.run(
        [sys.executable, "-m", "clients.cli", "init", "--data-dir", str(tmp_path / "a"),
         "--database-url", pg_url],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("GOVGW_")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"keyring: {tmp_path / 'a' / 'keys' / 'keyring.json'}" in lines
    said = [line for line in lines if line.startswith("database: ")]
    assert len(said) == 1 and said[0].startswith(f"database: {pg_url} (postgresql), node node-")
    assert "it holds this keyring's fingerprint " in said[0]
