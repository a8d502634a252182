"""Test harness: a real data directory and a real gRPC server on a loopback port."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from clients.sdk import GovgwClient
from gateway import admin
from gateway.app import build_parts
from gateway.config import ServeConfig
from gateway.pipeline import Parts
from gateway.server import GatewayServer

# id, kind, department, region, provider ids. agency-civil is the civil-affairs
# provider by its binding; agency-far (another county's police) provides nothing.
CALLERS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("agency-civil", "agency", "汶川县民政局", "513221", ("county.civil-affairs",)),
    ("agency-far", "agency", "松潘县公安局", "513224", ()),
    ("counter-wenchuan", "counter", "汶川县政务服务中心", "513221", ()),
    ("counter-songpan", "counter", "松潘县政务服务中心", "513224", ()),
    ("public-portal", "public", "公众", "513200", ()),
)


@dataclass
class Harness:
    data_dir: Path
    config: ServeConfig
    parts: Parts
    server: GatewayServer
    keys: dict[str, str]
    demo: dict[str, Any]
    clients: list[GovgwClient] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def client(self, caller: str | None, *, api_key: str | None = None, **kw: Any) -> GovgwClient:
        key = api_key or (self.keys.get(caller) if caller else None)
        c = GovgwClient(self.target, api_key=key, **kw)
        self.clients.append(c)
        return c

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)

    def audit_text(self) -> str:
        return self.config.layout.audit.read_text(encoding="utf-8")

    def audit_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_text().splitlines() if line.strip()]

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.server.stop(grace=1)
        # A shared database's connections and change listener end with the process in
        # production; a test's gateway closes them, so none outlives its test's server.
        storage = self.parts.auth.registry.storage
        if storage.shared:
            self.parts.pool.close()
            storage.close()


def make_data_dir(
    data_dir: Path, *, persons: int = 300, entities: int = 60
) -> tuple[dict[str, str], dict[str, Any]]:
    admin.init(data_dir)
    demo = admin.pool_seed(data_dir, persons=persons, entities=entities, seed=7)
    keys = {
        cid: admin.callers_add(data_dir, cid, kind, dept, region, provider_ids=providers)["api_key"]
        for cid, kind, dept, region, providers in CALLERS
    }
    return keys, demo


def shifted_clock(to: datetime) -> Callable[[], datetime]:
    """A clock that reads `to` now and then runs at the real rate.

    Working-day deadlines need a year the holiday calendar covers; tests that
    compute them run at a fixed date instead of whatever today is."""
    offset = to - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def start(
    data_dir: Path,
    keys: dict[str, str],
    demo: dict[str, Any],
    *,
    clock: Callable[[], datetime] | None = None,
    **config: Any,
) -> Harness:
    cfg = ServeConfig(data_dir=data_dir, listen="127.0.0.1:0", grace_s=1, **config)
    parts = build_parts(cfg)
    if clock is not None:  # one time line for decisions and their audit records
        parts.clock = clock
        parts.audit.clock = clock
    server = GatewayServer(cfg, parts)
    server.start()
    return Harness(data_dir, cfg, parts, server, keys, demo)


class CapturedLogs(logging.Handler):
    """Everything the gateway logs, formatted, to search for leaked values."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def as_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def expect_error(
    fn: Any, code: grpc.StatusCode, reason: str, fields: list[str] | None = None
) -> Any:
    """Call fn, which must fail with exactly this status, reason and field violations."""
    from clients.sdk import GovgwClientError

    try:
        fn()
    except GovgwClientError as e:
        assert e.code == code, f"expected {code.name}, got {e.code.name} ({e})"
        assert e.reason == reason, f"expected {reason}, got {e.reason} ({e})"
        if fields is not None:
            assert [v.field for v in e.violations] == fields, e
        assert e.request_id.startswith("req_"), e
        return e
    raise AssertionError(f"expected {code.name} {reason}, call succeeded")


def eventually(fn: Any, within_s: float = 2.0) -> Any:
    """For changes the CLI writes from another process, which a running server sees shortly."""
    from clients.sdk import GovgwClientError

    deadline = time.monotonic() + within_s
    while True:
        try:
            return fn()
        except (GovgwClientError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def holds_within(check: Callable[[], bool], within_s: float = 1.0) -> bool:
    """Whether `check` holds within `within_s` (a requirement's bound, not a sleep)."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_subprocess(data_dir: Path, port: int, timeout: float = 60) -> subprocess.Popen:
    """`govgw serve` in a child process, returned once it accepts connections."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clients.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError("govgw serve did not start") from None
            time.sleep(0.1)
