"""A real gateway with configured limits, oracle and state backend (in-process or Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.app import attach, build_parts
from gateway.config import ServeConfig
from gateway.server import GatewayServer
from tests.support import Harness


def start_guarded(
    data_dir: Path, keys: dict[str, str], demo: dict[str, Any], **config: Any
) -> Harness:
    """Like tests.support.start, with `gateway.app.attach` as `govgw serve` does it."""
    cfg = ServeConfig(data_dir=data_dir, listen="127.0.0.1:0", grace_s=1, **config)
    parts = attach(build_parts(cfg), cfg)
    server = GatewayServer(cfg, parts)
    server.start()
    return Harness(data_dir, cfg, parts, server, keys, demo)
