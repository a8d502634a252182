"""A real gateway with configured limits, oracle and state backend (in-process or Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.app import attach, build_parts
from gateway.config import ServeConfig
from gateway.server import GatewayServer
from tests.support import Harness


def forget_state(cfg: ServeConfig) -> None:
    """Delete the in-process state file: the next start counts from zero.

    Fixtures that share a data directory between tests want each test's
    windows fresh, as the Redis runs get from FLUSHALL."""
    state = cfg.layout.state
    for p in (state, *(state.with_name(state.name + s) for s in ("-wal", "-shm", "-journal"))):
        p.unlink(missing_ok=True)


def start_guarded(
    data_dir: Path,
    keys: dict[str, str],
    demo: dict[str, Any],
    *,
    keep_state: bool = False,
    **config: Any,
) -> Harness:
    """Like tests.support.start, with `gateway.app.attach` as `govgw serve` does it.

    The in-process windows start empty unless `keep_state` (a restart test)."""
    cfg = ServeConfig(data_dir=data_dir, listen="127.0.0.1:0", grace_s=1, **config)
    if not keep_state:
        forget_state(cfg)
    parts = attach(build_parts(cfg), cfg)
    server = GatewayServer(cfg, parts)
    server.start()
    return Harness(data_dir, cfg, parts, server, keys, demo)
