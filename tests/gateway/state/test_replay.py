"""Replay protection on both backends: idempotency keys, nonces and the timestamp window."""

from __future__ import annotations

import grpc
import pytest

from gateway.errors import GovgwError
from gateway.state import StateBackend
from gateway.state.replay import Replay, ReplayGuard, fingerprint

KEY = "idem-0123456789abcdef"


async def _err(coro) -> GovgwError:
    with pytest.raises(GovgwError) as info:
        await coro
    return info.value


def test_idempotency_runs_once_and_replays_the_response(run) -> None:
    async def body(s: StateBackend) -> None:
        g = ReplayGuard(s)
        fp = fingerprint("c", "policy.activate", b"request-1")
        assert await g.begin("c", KEY, fp) is None  # first: run it
        e = await _err(g.begin("c", KEY, fp))  # a retry while it runs
        assert e.code == grpc.StatusCode.ABORTED and e.reason == "IDEMPOTENCY_IN_PROGRESS"
        await g.succeed("c", KEY, fp, b"\x00response")
        assert await g.begin("c", KEY, fp) == Replay(b"\x00response")
        other = fingerprint("c", "policy.activate", b"request-2")
        e = await _err(g.begin("c", KEY, other))
        assert e.reason == "IDEMPOTENCY_KEY_REUSED"
        # keys are per caller
        assert await g.begin("d", KEY, fp) is None

    run(body)


def test_a_failed_call_frees_its_key(run) -> None:
    async def body(s: StateBackend) -> None:
        g = ReplayGuard(s)
        fp = fingerprint("c", "a", b"r")
        assert await g.begin("c", KEY, fp) is None
        await g.fail("c", KEY)
        assert await g.begin("c", KEY, fp) is None

    run(body)


def test_nonce_once_within_the_window(run) -> None:
    async def body(s: StateBackend) -> None:
        now = 1_800_000_000.0
        g = ReplayGuard(s, window_s=300, clock=lambda: now)
        nonce = "n-0123456789abcdef"
        await g.check_nonce("c", nonce, str(now - 10))
        assert (await _err(g.check_nonce("c", nonce, str(now)))).reason == "NONCE_REPLAYED"
        await g.check_nonce("d", nonce, str(now))  # another caller's nonce space
        e = await _err(g.check_nonce("c", "n-fedcba9876543210", str(now - 301)))
        assert e.code == grpc.StatusCode.FAILED_PRECONDITION and e.reason == "REQUEST_EXPIRED"
        e = await _err(g.check_nonce("c", "n-fedcba9876543210", str(now + 301)))
        assert e.reason == "REQUEST_EXPIRED"
        assert (await _err(g.check_nonce("c", "short", str(now)))).reason == "NONCE_INVALID"
        e = await _err(g.check_nonce("c", "n-aaaaaaaaaaaaaaaa", "yesterday"))
        assert e.reason == "TIMESTAMP_INVALID"

    run(body)


def test_put_if_absent(run) -> None:
    async def body(s: StateBackend) -> None:
        assert await s.put_if_absent("k", "v1", 10) is None
        assert await s.put_if_absent("k", "v2", 10) == "v1"
        await s.put("k", "v3", 10)
        assert await s.put_if_absent("k", "v4", 10) == "v3"
        await s.forget("k")
        assert await s.put_if_absent("k", "v5", 10) is None

    run(body)
