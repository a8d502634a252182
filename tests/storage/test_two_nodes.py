"""Two `govgw serve` nodes, separate data directories, one PostgreSQL database and one
keyring (GOVGW_KEYRING_FILE): a caller added through the CLI on either directory is
served by both, and a suspension through the CLI is refused by both within 1 s."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from clients.sdk import GovgwClient, GovgwClientError
from tests.support import free_port


def _env(pg_url: str, keyring: Path) -> dict[str, str]:
    env = {**os.environ, "GOVGW_DATABASE_URL": pg_url, "GOVGW_KEYRING_FILE": str(keyring)}
    env.pop("GOVGW_REDIS_URL", None)  # the registry alone decides here
    return env


def govgw(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "clients.cli", *args, "--json"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, f"govgw {' '.join(args)}: {proc.stderr}"
    return json.loads(proc.stdout)


def _serve(env: dict[str, str], data_dir: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve", "--data-dir", str(data_dir),
             "--listen", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"govgw serve did not start: {log.read_text()}") from None
            time.sleep(0.1)


def _refusal(port: int, key: str) -> str:
    """'' when the node answers the caller, else the refusal's reason."""
    with GovgwClient(f"127.0.0.1:{port}", api_key=key) as gw:
        try:
            gw.list_datasets()
        except GovgwClientError as e:
            assert e.code == grpc.StatusCode.PERMISSION_DENIED, e
            return e.reason
    return ""


def _by(check: Callable[[], bool], deadline: float) -> bool:
    """Whether `check` holds by `deadline` (monotonic): the requirement's bound."""
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def nodes(pg_url: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], list[Path], list[int]]]:
    dirs = [tmp_path / "a", tmp_path / "b"]
    env = _env(pg_url, dirs[0] / "keys" / "keyring.json")
    for d in dirs:
        govgw(env, "init", "--data-dir", str(d))
    procs, ports = [], []
    try:
        for d in dirs:
            proc, port = _serve(env, d, tmp_path / f"{d.name}.log")
            procs.append(proc)
            ports.append(port)
        yield env, dirs, ports
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


@pytest.mark.requirement("R10")
def test_two_nodes_on_one_database_act_as_one(nodes) -> None:
    env, (a, b), ports = nodes
    keys = {}
    for data_dir, caller in ((a, "hall-a"), (b, "hall-b")):  # added through either directory
        doc = govgw(
            env, "callers", "add", "--data-dir", str(data_dir), "--id", caller,
            "--kind", "counter", "--department", "政务大厅", "--region", "513221",
        )  # fmt: skip
        keys[caller] = doc["api_key"]
    deadline = time.monotonic() + 1.0  # each node serves both callers within 1 s
    for port in ports:
        for caller in ("hall-a", "hall-b"):
            assert _by(lambda p=port, c=caller: _refusal(p, keys[c]) == "", deadline), caller
    govgw(env, "callers", "suspend", "--data-dir", str(b), "hall-a", "--reason", "复核")
    deadline = time.monotonic() + 1.0  # both nodes refuse within 1 s of the command's end
    for port in ports:
        assert _by(lambda p=port: _refusal(p, keys["hall-a"]) == "CALLER_SUSPENDED", deadline)
        assert _refusal(port, keys["hall-b"]) == ""  # the other caller goes on
