"""Emergency mode under `govgw serve --workers 2`: an end recorded by one worker
shuts the access on the other worker's very next call."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from clients.sdk import GovgwClient
from gateway import admin
from tests.gateway.state.redis_server import RedisServer
from tests.integration.test_workers import CHANNELS, _accepts
from tests.support import eventually, expect_error, free_port, make_data_dir

DS = "social_assistance.recipient"
PURPOSE = "地震受灾群众救助核查"


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = Path(tmp_path_factory.mktemp("emergency-workers"))
    redis_server = RedisServer(tmp / "redis").start()
    data = tmp / "data"
    keys, demo = make_data_dir(data, persons=20, entities=5)
    for cid, kind, dept in (("agency-rescue", "agency", "汶川县应急管理局"),
                            ("root", "admin", "州大数据局")):  # fmt: skip
        keys[cid] = admin.callers_add(data, cid, kind, dept, "513221")["api_key"]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "serve", "--workers", "2",
         "--data-dir", str(data), "--listen", f"127.0.0.1:{port}",
         "--redis-url", redis_server.url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    audit = data / "audit"
    while not (
        (audit / "audit-0.log").exists() and (audit / "audit-1.log").exists() and _accepts(port)
    ):
        assert proc.poll() is None and time.monotonic() < deadline, "workers did not start"
        time.sleep(0.1)
    time.sleep(0.5)
    yield {"port": port, "keys": keys, "demo": demo, "data": data}
    proc.kill()
    proc.wait()
    redis_server.stop()


@pytest.mark.requirement("R11")
def test_end_reaches_every_worker_on_the_next_call(workers: dict) -> None:
    target = f"127.0.0.1:{workers['port']}"
    subject = workers["demo"]["assistance_recipient"]["id_number"]
    rescue = [
        GovgwClient(target, api_key=workers["keys"]["agency-rescue"],
                    options=[("grpc.channel_id", i)])
        for i in range(CHANNELS)
    ]  # fmt: skip
    with GovgwClient(target, api_key=workers["keys"]["root"]) as root:
        em = root.declare_emergency(
            title="地震应急响应",
            legal_basis="《突发事件应对法》第四十五条",
            scope={DS: ["name", "assistance_type"]},
            agencies=["agency-rescue"],
            purpose=PURPOSE,
            ends_at=datetime.now(UTC) + timedelta(days=1),
        )
        # A declaration may reach the other worker a moment later: it only widens.
        for c in rescue:
            eventually(lambda c=c: c.lookup(DS, subject, purpose=PURPOSE))
        root.end_emergency(em.id, reason="应急响应终止")
    # The end is seen by both workers on their very next call: no waiting here.
    for c in rescue:
        with c:
            expect_error(
                lambda c=c: c.lookup(DS, subject, purpose=PURPOSE),
                grpc.StatusCode.PERMISSION_DENIED,
                "GRANT_REQUIRED",
            )
    out = subprocess.run(
        [sys.executable, "-m", "clients.cli", "audit", "verify", "--data-dir",
         str(workers["data"])], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    # Both workers served calls under the emergency, each in its own chain.
    chains = {
        p.name
        for p in (workers["data"] / "audit").glob("audit-*.log")
        if em.id in p.read_text(encoding="utf-8")
        and '"emergencies"' in p.read_text(encoding="utf-8")
    }
    assert {"audit-0.log", "audit-1.log"} <= chains
