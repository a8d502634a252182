"""`govgw serve --workers 2 --metrics-listen`: one /metrics endpoint for both workers.

The workers write their values to files in the supervisor's private directory
(prometheus_client's multiprocess mode); the supervisor's endpoint sums them.
A worker that dies leaves its live gauges out of the sums, its counters in.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from clients.sdk import GovgwClient, GovgwClientError
from gateway.metrics import MULTIPROC_ENV
from tests.gateway.state.redis_server import RedisServer
from tests.integration.test_workers import listeners
from tests.scrape import assert_call_lines, json_lines, scrape
from tests.support import free_port, make_data_dir

PURPOSE = "户籍业务办理"
VERIFY = "govgw.v1.VerificationService/VerifyIdentity"
CHANNELS = 16  # SO_REUSEPORT balances connections: enough of them reach both workers


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = Path(tmp_path_factory.mktemp("metrics-workers"))
    redis_server = RedisServer(tmp / "redis").start()
    keys, demo = make_data_dir(tmp / "data", persons=40, entities=10)
    port, mport = free_port(), free_port()
    log = tmp / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve", "--workers", "2",
             "--data-dir", str(tmp / "data"), "--listen", f"127.0.0.1:{port}",
             "--redis-url", redis_server.url, "--metrics-listen", f"127.0.0.1:{mport}",
             "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    audit = tmp / "data" / "audit"
    deadline = time.monotonic() + 60
    while not (
        (audit / "audit-0.log").exists()
        and (audit / "audit-1.log").exists()
        and listeners(port) == 2
        and _accepts(mport)
    ):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    pids = _workers(proc.pid)
    assert len(pids) == 2, pids
    yield {"proc": proc, "port": port, "mport": mport, "keys": keys, "demo": demo,
           "data": tmp / "data", "log": log, "pids": pids}  # fmt: skip
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    redis_server.stop()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _workers(parent: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found = []
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(st.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (st.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(st.parent.name))
    return sorted(found)


def _multiproc_dir(pid: int) -> Path:
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    value = next(e for e in env if e.startswith(MULTIPROC_ENV.encode() + b"="))
    return Path(value.split(b"=", 1)[1].decode())


def clients(w: dict[str, Any], api_key: str) -> list[GovgwClient]:
    # A distinct channel argument gives each client its own connection.
    return [
        GovgwClient(f"127.0.0.1:{w['port']}", api_key=api_key, options=[("grpc.channel_id", i)])
        for i in range(CHANNELS)
    ]


def audit_lines(data: Path) -> dict[str, int]:
    return {
        p.name: len(p.read_text().splitlines()) for p in sorted(data.glob("audit/audit-[0-9].log"))
    }


@pytest.mark.requirement("R12")
def test_one_endpoint_sums_both_workers(workers) -> None:
    adult = workers["demo"]["adult_resident"]
    before = scrape(workers["mport"])
    for c in clients(workers, workers["keys"]["agency-civil"]):
        with c:
            assert c.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE).matched
    after = scrape(workers["mport"])
    ok = after.value("govgw_calls_total", method=VERIFY, code="OK")
    assert ok - before.value("govgw_calls_total", method=VERIFY, code="OK") == CHANNELS
    # Both workers served some of them (each has its own chain), and the endpoint's
    # count of durable records is the sum of both chains.
    lines = audit_lines(workers["data"])
    assert set(lines) == {"audit-0.log", "audit-1.log"} and all(lines.values()), lines
    assert after.value("govgw_audit_records_total") == sum(lines.values())
    # Summed, not one series per process: no pid label anywhere.
    assert not any("pid" in s.labels for s in after.samples)
    assert after.value("govgw_build_info") == 1
    assert len(after.labels("govgw_policy_version_info", "version")) == 1
    assert after.value("govgw_call_duration_seconds_count", method=VERIFY) == ok
    # The workers' values are in a directory only this user can enter.
    directory = _multiproc_dir(workers["pids"][0])
    mode = directory.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid()


def test_workers_log_json_lines_with_their_tag(workers) -> None:
    refused = []
    for c in clients(workers, "gk_not-a-key"):
        with c:
            try:
                c.verify_identity("张伟", "110105194912310021", purpose=PURPOSE)
            except GovgwClientError as e:
                assert e.code == grpc.StatusCode.UNAUTHENTICATED
                refused.append(e.request_id)
    assert len(refused) == CHANNELS
    lines = json_lines(workers["log"])
    assert_call_lines(lines, refused)
    tags = {d["worker"] for d in lines if d.get("request_id") in set(refused)}
    assert tags == {0, 1}
    text = workers["log"].read_text(encoding="utf-8")
    assert "110105194912310021" not in text and "张伟" not in text


def test_a_dead_worker_leaves_live_gauges_and_keeps_its_counts(workers) -> None:
    directory = _multiproc_dir(workers["pids"][0])
    before = scrape(workers["mport"])
    gone = workers["pids"][0]
    assert list(directory.glob(f"gauge_live*_{gone}.db"))
    os.kill(gone, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while list(directory.glob(f"gauge_live*_{gone}.db")):  # the supervisor marks it dead
        assert time.monotonic() < deadline, "the dead worker's live gauges were not removed"
        time.sleep(0.05)
    after = scrape(workers["mport"])
    # Counters are monotonic: the dead worker's calls still count.
    assert after.value("govgw_calls_total") == before.value("govgw_calls_total")
    assert after.value("govgw_build_info") == 1  # the live worker's
    # The supervisor drains the other worker on SIGTERM and removes the directory.
    workers["proc"].send_signal(signal.SIGTERM)
    workers["proc"].wait(timeout=30)
    assert not directory.exists()
