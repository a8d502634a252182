"""`govgw serve --workers 2`: two processes on one port sharing Redis.

Shared state is what makes the workers one gateway: the enumeration monitor
counts an attacker's answers across both processes, a suspension made from
the CLI is refused by both, and each worker keeps its own audit chain.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from stdnum.cn import ric

from clients.sdk import GovgwClient, GovgwClientError
from tests.gateway.state.redis_server import RedisServer
from tests.support import free_port, make_data_dir

PURPOSE = "户籍业务办理"
CHANNELS = 16  # SO_REUSEPORT balances connections: enough of them reach both workers
MIN_ANSWERS = 20  # OracleConfig's default


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = Path(tmp_path_factory.mktemp("workers"))
    redis_server = RedisServer(tmp / "redis").start()
    keys, demo = make_data_dir(tmp / "data", persons=40, entities=10)
    port = free_port()
    # These tests ask about the same few subjects again and again, watching a change
    # reach every worker: per-subject budgets are not what they test.
    limits = tmp / "limits.toml"
    limits.write_text("[subject]\ncalls = 100000\ncallers = 100\n", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "serve", "--workers", "2",
         "--data-dir", str(tmp / "data"), "--listen", f"127.0.0.1:{port}",
         "--redis-url", redis_server.url, "--limits-config", str(limits)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    audit = tmp / "data" / "audit"
    try:  # stopped even when they never came up: no orphaned workers or Redis
        # Up when both workers have opened their audit chains and each has its own
        # listening socket: a connection made before the second binds reaches the first.
        while not (
            (audit / "audit-0.log").exists()
            and (audit / "audit-1.log").exists()
            and listeners(port) == 2
        ):
            assert proc.poll() is None and time.monotonic() < deadline, "workers did not start"
            time.sleep(0.1)
        yield {"proc": proc, "port": port, "keys": keys, "demo": demo, "data": tmp / "data",
               "redis": redis_server}  # fmt: skip
    finally:
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


def listeners(port: int) -> int:
    """Listening sockets on the port: one per worker under SO_REUSEPORT."""
    rows = [
        line.split()
        for table in ("/proc/net/tcp", "/proc/net/tcp6")  # gRPC binds 127.0.0.1 v4-mapped
        for line in Path(table).read_text().splitlines()[1:]
    ]
    return sum(1 for r in rows if r[1].endswith(f":{port:04X}") and r[3] == "0A")


def clients(w: dict, caller: str) -> list[GovgwClient]:
    # A distinct channel argument gives each client its own connection.
    return [
        GovgwClient(
            f"127.0.0.1:{w['port']}", api_key=w["keys"][caller], options=[("grpc.channel_id", i)]
        )
        for i in range(CHANNELS)
    ]


def records(data: Path) -> dict[str, list[dict]]:
    return {
        p.name: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        for p in sorted((data / "audit").glob("audit-*.log"))
    }


def test_both_workers_answer(workers) -> None:
    adult = workers["demo"]["adult_resident"]
    for c in clients(workers, "agency-civil"):
        with c:
            assert c.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE).matched
    per_worker = {
        name: sum(1 for r in recs if r["caller"] == "agency-civil")
        for name, recs in records(workers["data"]).items()
        if name != "audit-admin.log"
    }
    assert set(per_worker) == {"audit-0.log", "audit-1.log"}
    assert all(n > 0 for n in per_worker.values()), per_worker


def test_the_monitor_counts_across_workers(workers) -> None:
    """Guessing ID numbers over 16 connections to 2 processes: still at most MIN_ANSWERS."""
    answered, refused = 0, 0
    cs = clients(workers, "counter-songpan")
    for i in range(60):
        body = f"51322119800101{i:03d}"
        try:
            cs[i % CHANNELS].verify_identity("张伟", body + ric.calc_check_digit(body + "0"),
                                             purpose=PURPOSE)  # fmt: skip
            answered += 1
        except GovgwClientError as e:
            assert e.code == grpc.StatusCode.PERMISSION_DENIED and e.reason == "CALLER_SUSPENDED"
            refused += 1
    for c in cs:
        c.close()
    assert answered == MIN_ANSWERS and refused == 60 - MIN_ANSWERS
    suspensions = [r for recs in records(workers["data"]).values() for r in recs
                   if r["action"] == "caller.suspend"]  # fmt: skip
    assert [r["caller"] for r in suspensions] == ["counter-songpan"]


@pytest.mark.requirement("R10")
def test_cli_suspension_reaches_every_worker_and_chains_verify(workers) -> None:
    d, url = str(workers["data"]), workers["redis"].url
    subprocess.run([sys.executable, "-m", "clients.cli", "callers", "suspend", "agency-far",
                    "--reason", "演练", "--data-dir", d, "--redis-url", url],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    adult = workers["demo"]["adult_resident"]
    for c in clients(workers, "agency-far"):
        with c, pytest.raises(GovgwClientError) as info:
            c.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
        assert info.value.reason == "CALLER_SUSPENDED"
    # SIGTERM to the parent drains both workers; then every chain verifies.
    workers["proc"].send_signal(signal.SIGTERM)
    assert workers["proc"].wait(timeout=30) == 0
    out = subprocess.run([sys.executable, "-m", "clients.cli", "audit", "verify", "--json",
                          "--data-dir", d], check=True, capture_output=True, text=True)  # fmt: skip
    report = json.loads(out.stdout)
    assert report["ok"]
    assert {f["file"] for f in report["files"]} == {"audit-0.log", "audit-1.log",
                                                    "audit-admin.log"}  # fmt: skip


def test_a_grant_change_reaches_a_running_gateway_within_1s(tmp_path: Path) -> None:
    """The announcement `govgw grants add|revoke` makes (with GOVGW_REDIS_URL) arrives by pub/sub."""
    from gateway import admin
    from tests.gateway.state.harness import start_guarded

    redis_server = RedisServer(tmp_path / "redis").start()
    keys, demo = make_data_dir(tmp_path / "data", persons=20, entities=5)
    h = start_guarded(tmp_path / "data", keys, demo, redis_url=redis_server.url)
    try:
        adult = demo["adult_resident"]
        with h.client("agency-civil") as gw:  # the first call starts the subscription
            gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
        oracle = h.parts.oracle
        assert oracle is not None
        time.sleep(0.5)
        before = oracle.invalidations
        t0 = time.monotonic()
        assert admin.announce_grants_change(redis_server.url)
        while oracle.invalidations == before:
            assert time.monotonic() - t0 < 1.0, "no invalidation within 1 s"
            time.sleep(0.01)
    finally:
        h.stop()
        redis_server.stop()


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its reaping is left


def test_workers_exit_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        make_data_dir(tmp_path / "data", persons=5, entities=2)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve", "--workers", "2",
             "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{port}",
             "--redis-url", redis_server.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not (listeners(port) == 2 and len(_children(proc.pid)) >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, "workers did not start"
            time.sleep(0.1)
        workers = [pid for pid in _children(proc.pid) if _running(pid)]
        proc.kill()  # no SIGTERM to forward: the workers must notice on their own
        proc.wait()
        deadline = time.monotonic() + 20
        while any(_running(pid) for pid in workers):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.2)
        assert not _accepts(port)
    finally:
        redis_server.stop()
