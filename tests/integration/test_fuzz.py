"""Every RPC of the route table against hostile bytes, with no key and with each caller kind.

The cases come from the request descriptors (tests/integration/fuzz_cases.py),
so a new RPC is covered without a test of its own. Target: no INTERNAL, no
UNKNOWN, no hang, no crash, no traceback in the log; every refusal carries
ErrorInfo in domain govgw, and every INVALID_ARGUMENT a BadRequest naming a
field. `make test` runs a bounded sample; `make fuzz` (GOVGW_FUZZ_CASES)
runs 100,000.
"""

from __future__ import annotations

import collections
import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway import admin
from gateway.routes import Route
from tests.integration.fuzz_cases import request_cases
from tests.support import CapturedLogs, Harness, make_data_dir, start

CASES = int(os.environ.get("GOVGW_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("GOVGW_FUZZ_SEED", "20261204"))
CALL_TIMEOUT_S = 20.0
NEVER = {"INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "CANCELLED", "DATA_LOSS"}


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, gateway_logs: CapturedLogs
) -> Iterator[Harness]:
    data_dir = Path(tmp_path_factory.mktemp("govgw-fuzz"))
    keys, demo = make_data_dir(data_dir, persons=40, entities=10)
    keys["admin"] = admin.callers_add(data_dir, "fuzz-admin", "admin", "大数据局", "513200")[
        "api_key"
    ]
    # The bare parts (no enumeration monitor): the point is what each RPC does with
    # the input, not whether the monitor suspends a caller that sends nonsense.
    h = start(data_dir, keys, demo)
    yield h
    h.stop()


def _credentials(h: Harness) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    creds: list[tuple[str, tuple[tuple[str, str], ...]]] = [("no key", ())]
    for who in ("agency-civil", "counter-wenchuan", "public-portal", "admin"):
        creds.append((who, (("authorization", f"Bearer {h.keys[who]}"),)))
    return creds


def _call(channel: grpc.Channel, route: Route[Any, Any], raw: bytes, md: Any) -> None:
    if route.batch is not None:  # items streamed in: the case as the one message
        list(channel.stream_stream(route.path)(iter([raw]), metadata=md, timeout=CALL_TIMEOUT_S))
    elif route.streams:
        list(channel.unary_stream(route.path)(raw, metadata=md, timeout=CALL_TIMEOUT_S))
    else:
        channel.unary_unary(route.path)(raw, metadata=md, timeout=CALL_TIMEOUT_S)


def _problem(e: grpc.RpcError) -> str:
    """What is wrong with an error reply, or "" if it is a proper refusal."""
    code = e.code().name
    if code in NEVER:
        return f"{code}: {e.details()}"
    status = rpc_status.from_call(e)
    if status is None:
        return f"{code} without google.rpc.Status details"
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    has_info = any(d.Unpack(info) for d in status.details if d.Is(info.DESCRIPTOR))
    has_bad = any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
    if not has_info or info.domain != "govgw" or not info.reason:
        return f"{code} without a govgw ErrorInfo"
    if info.reason == "AUDIT_UNAVAILABLE":
        # The trail is healthy here: it refused the record itself (it looked like
        # personal data), so something of the caller's bytes was about to be echoed.
        return f"{code} {info.reason}: an audit record was refused"
    if code == "INVALID_ARGUMENT" and not (has_bad and all(v.field for v in bad.field_violations)):
        return f"INVALID_ARGUMENT {info.reason} without a BadRequest naming the field"
    if "Traceback" in e.details() or "<class" in e.details():
        return f"{code} {info.reason}: the reply names Python internals"
    return ""


def test_fuzz_every_route(fuzzed: Harness, gateway_logs: CapturedLogs) -> None:
    rng = random.Random(SEED)
    routes = fuzzed.server.routes
    assert routes, "the server reports no route table"
    creds = _credentials(fuzzed)
    plan = [
        (route, label, raw, who, md)
        for route in routes
        for label, raw in request_cases(route.request_type.DESCRIPTOR, rng)
        for who, md in creds
    ]
    rng.shuffle(plan)
    # Every route with every credential at least once, then as many as CASES allows.
    firsts: dict[tuple[str, str], Any] = {}
    for item in plan:
        firsts.setdefault((item[0].path, item[3]), item)
    chosen = list(firsts.values())
    rest = [x for x in plan if x is not firsts[(x[0].path, x[3])]]
    while len(chosen) < CASES and rest:
        chosen.extend(rest[: CASES - len(chosen)])
        rest = rest[CASES - len(chosen) :] if len(chosen) < CASES else []
        if len(chosen) < CASES and not rest:  # more cases than the plan: new random bytes
            rest = [
                (r, f"random {n}", rng.randbytes(n), w, m)
                for r, _, _, w, m in plan
                for n in (rng.randint(1, 64),)
            ]
    before = len(gateway_logs.lines)
    codes: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    unavailable: collections.Counter[str] = collections.Counter()

    def run(item: Any) -> None:
        route, label, raw, who, md = item
        try:
            _call(channel, route, raw, md)
            codes["OK"] += 1
        except grpc.RpcError as e:
            codes[e.code().name] += 1
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                unavailable[f"{route.path} {e.details()[:60]}"] += 1
            problem = _problem(e)
            if problem:
                problems.append(f"{route.path} [{who}] {label}: {problem}")

    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with (
        grpc.insecure_channel(fuzzed.target, options=options) as channel,
        ThreadPoolExecutor(8) as pool,
    ):
        list(pool.map(run, chosen[:CASES]))
    logged = gateway_logs.lines[before:]
    assert not problems, f"{len(problems)} bad replies, e.g.:\n" + "\n".join(problems[:30])
    assert not [line for line in logged if "Traceback" in line or "unexpected" in line]
    assert sum(codes.values()) == min(CASES, len(chosen)), codes
    print(f"fuzz: {sum(codes.values())} cases over {len(routes)} routes: {dict(codes)}")
    if unavailable:
        print(f"fuzz: UNAVAILABLE: {dict(unavailable)}")


def test_framework_services_refuse_malformed_bytes(fuzzed: Harness) -> None:
    """Health and reflection (grpcio's own services) get the same input edge:
    INVALID_ARGUMENT MALFORMED_REQUEST with ErrorInfo, not UNKNOWN and a traceback."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    bad = b"\x0a\x01\xff"  # field 1 (a string) holding invalid UTF-8
    calls = {
        "Health/Check": lambda ch: ch.unary_unary("/grpc.health.v1.Health/Check")(bad, timeout=5),
        "Health/Watch": lambda ch: list(
            ch.unary_stream("/grpc.health.v1.Health/Watch")(bad, timeout=5)
        ),
        "reflection": lambda ch: list(
            ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")(
                iter([bad]), timeout=5
            )
        ),
    }
    with grpc.insecure_channel(fuzzed.target) as channel:
        for name, call in calls.items():
            with pytest.raises(grpc.RpcError) as e:
                call(channel)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert _problem(e.value) == "", name
        ok = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert ok.status == health_pb2.HealthCheckResponse.SERVING


def test_health_watch_streams_are_capped(fuzzed: Harness) -> None:
    """Health/Watch needs no credentials: past the cap (64) a new stream is refused at
    once with RESOURCE_EXHAUSTED STREAMS_EXHAUSTED, so idle watchers cannot hold the
    server's call slots; the open ones keep being served."""
    import asyncio

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def run() -> collections.Counter[str]:
        seen: collections.Counter[str] = collections.Counter()
        async with grpc.aio.insecure_channel(fuzzed.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            calls = [stub.Watch(health_pb2.HealthCheckRequest(), timeout=10) for _ in range(80)]

            async def first(call: Any) -> None:
                try:
                    reply = await call.read()
                    seen[health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)] += 1
                except grpc.aio.AioRpcError as e:
                    assert _problem(e) == ""
                    seen[f"{e.code().name}"] += 1

            await asyncio.gather(*(first(c) for c in calls))
            for c in calls:
                c.cancel()
        return seen

    seen = asyncio.run(run())
    assert seen == {"SERVING": 64, "RESOURCE_EXHAUSTED": 16}, seen
