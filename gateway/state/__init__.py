"""Shared state: one interface, an in-process and a Redis implementation."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.state.base import (
    Observation,
    Slot,
    StateBackend,
    Verdict,
    Window,
    state_unavailable,
)
from gateway.state.memory import InProcessState

REDIS_URL_ENV = "GOVGW_REDIS_URL"

__all__ = [
    "InProcessState",
    "Observation",
    "Slot",
    "StateBackend",
    "Verdict",
    "Window",
    "open_state",
    "redis_url",
    "state_unavailable",
]


def redis_url(configured: str | None = None) -> str:
    """The configured Redis URL, else GOVGW_REDIS_URL, else "" (in-process)."""
    url = configured or os.environ.get(REDIS_URL_ENV, "")
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("redis url: expected redis://HOST:PORT/DB (or rediss://, unix://)")
    return url


def open_state(url: str | None = None, path: Path | None = None) -> StateBackend:
    """Redis when a URL is configured; else in-process, kept in `path` if given."""
    url = redis_url(url)
    if not url:
        return InProcessState(path)
    from gateway.state.redisstate import RedisState

    return RedisState(url)
