"""Replay protection on both backends: idempotency keys, nonces and the timestamp window."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import wrappers_pb2
from govgw.v1 import opening_pb2

from clients.sdk import GovgwClientError
from gateway.app import attach, build_parts
from gateway.call import Outcome, Request
from gateway.config import ServeConfig
from gateway.errors import GovgwError
from gateway.pipeline import Pipeline
from gateway.routes import Route, method
from gateway.state import StateBackend
from gateway.state.replay import Replay, ReplayGuard, fingerprint
from tests.gateway.state.harness import forget_state
from tests.gateway.state.redis_server import RedisServer
from tests.support import free_port, make_data_dir

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


# -- through the pipeline on a real grpc.aio server --------------------------
# A test RPC that changes state (it counts its executions), so a replay that ran it
# twice shows: a route table row served by the real Pipeline, as every RPC is.
METHOD = "/govgw.test.Mutate/Mutate"


class MutatingServer:
    def __init__(self, parts) -> None:
        self.pipeline = Pipeline(parts)
        self.executed: list[str] = []
        self.port = free_port()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _route(self) -> Route:
        def parse(msg: wrappers_pb2.StringValue, _in) -> Request[str]:
            return Request(purpose="测试", datasets=(), payload=msg.value)

        def handle(ex) -> Outcome:
            self.executed.append(ex.request.payload)
            return Outcome(wrappers_pb2.StringValue(value=f"done {len(self.executed)}"))

        # A row like any state-changing RPC's; its messages are StringValues.
        route = Route(
            method(opening_pb2.DESCRIPTOR, "OpeningService", "SuspendOpening"),
            "test.mutate",
            parse,
            handle,
            state_changing=True,
        )
        object.__setattr__(route, "request_type", wrappers_pb2.StringValue)
        object.__setattr__(route, "response_type", wrappers_pb2.StringValue)
        return route

    async def _mutate(self, raw: bytes, context) -> bytes:
        resp = await self.pipeline.serve(self._route(), raw, context)
        return resp.SerializeToString()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "govgw.test.Mutate",
                    {"Mutate": grpc.unary_unary_rpc_method_handler(self._mutate)},
                ),
            )
        )
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self._ready.set()
        await self._stop.wait()
        await server.stop(1)

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("govgw-replay")
    keys, _ = make_data_dir(d, persons=10, entities=5)
    return d, keys


@pytest.fixture(params=["memory", "redis"])
def mutating(request, replay_dir, tmp_path: Path) -> Iterator[tuple[MutatingServer, str, Path]]:
    d, keys = replay_dir
    redis_server = RedisServer(tmp_path / "redis").start() if request.param == "redis" else None
    cfg = ServeConfig(
        data_dir=d, listen="127.0.0.1:0", redis_url=redis_server.url if redis_server else ""
    )
    forget_state(cfg)  # the data dir is the module's: each test's nonces start fresh
    parts = attach(build_parts(cfg), cfg)
    s = MutatingServer(parts)
    yield s, keys["agency-civil"], cfg.layout.audit
    s.stop()
    parts.audit.close()
    if redis_server:
        redis_server.stop()


def _call(port: int, api_key: str, body: str, **headers: str) -> str:
    md = [("authorization", f"Bearer {api_key}"), *headers.items()]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            raw = ch.unary_unary(METHOD)(
                wrappers_pb2.StringValue(value=body).SerializeToString(), metadata=md, timeout=10
            )
        except grpc.RpcError as e:
            err = GovgwClientError.from_rpc_error(e)
            return f"{err.code.name} {err.reason}"
    return wrappers_pb2.StringValue.FromString(raw).value


def test_an_idempotency_key_makes_a_retry_return_the_first_response(mutating) -> None:
    s, key, audit = mutating
    idem = {"idempotency-key": "k-" + "a" * 20}
    assert _call(s.port, key, "activate v2", **idem) == "done 1"
    assert _call(s.port, key, "activate v2", **idem) == "done 1"  # not run again
    assert s.executed == ["activate v2"]
    assert _call(s.port, key, "activate v3", **idem) == "FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED"
    assert _call(s.port, key, "activate v3") == "done 2"  # no key: runs
    recs = [json.loads(x) for x in audit.read_text().splitlines() if '"test.mutate"' in x]
    assert [r.get("replayed", False) for r in recs[-4:]] == [False, True, False, False]


def test_a_signed_request_is_accepted_once(mutating) -> None:
    s, key, _ = mutating
    now = str(time.time())
    nonce = {"x-govgw-nonce": "n-" + "b" * 20, "x-govgw-timestamp": now}
    assert _call(s.port, key, "x", **nonce).startswith("done")
    assert _call(s.port, key, "x", **nonce) == "ALREADY_EXISTS NONCE_REPLAYED"
    stale = {"x-govgw-nonce": "n-" + "c" * 20, "x-govgw-timestamp": str(time.time() - 3600)}
    assert _call(s.port, key, "x", **stale) == "FAILED_PRECONDITION REQUEST_EXPIRED"
