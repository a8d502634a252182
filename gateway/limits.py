"""Limits: how much a caller may ask, checked before any decision or data read.

This is the in-process implementation: a sliding-window counter per
(caller, action) and a cap on calls in flight per caller. Tiers map a
caller kind to its allowance; operators tune them in config.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gateway.errors import exhausted


@dataclass(frozen=True)
class Tier:
    calls_per_window: int
    window_s: float = 60.0
    max_in_flight: int = 64


DEFAULT_TIERS: dict[str, Tier] = {
    # Agency systems batch-verify; counters serve people one at a time;
    # the public is the most likely to probe, so it gets the least.
    "agency": Tier(120_000),
    "counter": Tier(60_000),
    "public": Tier(600, max_in_flight=8),
}


@dataclass
class _Window:
    hits: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class Limits:
    def __init__(self, tiers: dict[str, Tier] | None = None) -> None:
        self.tiers = dict(DEFAULT_TIERS if tiers is None else tiers)
        self._windows: dict[tuple[str, str], _Window] = defaultdict(_Window)
        self._in_flight: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def tier_for(self, kind: str) -> Tier:
        return self.tiers.get(kind, DEFAULT_TIERS["public"])

    @contextmanager
    def admit(self, caller_id: str, kind: str, action: str) -> Iterator[None]:
        """Admit one call or raise RESOURCE_EXHAUSTED with a retry delay."""
        tier = self.tier_for(kind)
        now = time.monotonic()
        with self._lock:
            w = self._windows[(caller_id, action)]
            horizon = now - tier.window_s
            while w.hits and w.hits[0] <= horizon:
                w.hits.popleft()
            if len(w.hits) >= tier.calls_per_window:
                retry = w.hits[0] + tier.window_s - now
                raise exhausted(
                    "RATE_LIMITED",
                    f"at most {tier.calls_per_window} {action} calls per {tier.window_s:g} s",
                    retry_after_s=max(retry, 0.001),
                )
            if self._in_flight[caller_id] >= tier.max_in_flight:
                raise exhausted(
                    "TOO_MANY_IN_FLIGHT",
                    f"at most {tier.max_in_flight} calls in flight per caller",
                    retry_after_s=0.05,
                )
            w.hits.append(now)
            self._in_flight[caller_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[caller_id] -= 1
