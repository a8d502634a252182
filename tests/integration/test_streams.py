"""BatchLookup under many concurrent streams (issue: streams ended CANCELLED, unanswered).

Every stream is either served whole or refused at once with RESOURCE_EXHAUSTED
STREAMS_EXHAUSTED (ErrorInfo, RetryInfo); none is left queued until gRPC
cancels it. Refusals are audited like every other refusal.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from govgw.v1 import lookup_pb2, lookup_pb2_grpc
from grpc_status import rpc_status

from gateway.errors import GovgwError
from gateway.limits import LimitsConfig, StreamGate, StreamLimits, SubjectLimits
from tests.gateway.state.harness import start_guarded
from tests.support import Harness, make_data_dir

STREAMS = 500
PURPOSE = "社会保障待遇资格认证"


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = Path(tmp_path_factory.mktemp("govgw-streams"))
    keys, demo = make_data_dir(data_dir, persons=40, entities=10)
    h = start_guarded(
        data_dir,
        keys,
        demo,
        limits=LimitsConfig(
            streams=StreamLimits(per_caller=1, per_server=2),
            subject=SubjectLimits(calls=100_000, callers=100),  # one subject asked 300 times
        ),
    )
    yield h
    h.stop()


def test_stream_gate_counts_per_caller_and_per_server() -> None:
    gate = StreamGate(StreamLimits(per_caller=2, per_server=3))
    gate.enter("a")
    gate.enter("a")
    with pytest.raises(GovgwError) as e:
        gate.enter("a")
    assert e.value.reason == "STREAMS_EXHAUSTED" and "per caller" in e.value.message
    gate.enter("b")
    with pytest.raises(GovgwError) as e:
        gate.enter("c")
    assert "on this server" in e.value.message
    gate.leave("a")
    gate.enter("c")
    for c in ("a", "b", "c"):
        gate.leave(c)
    assert gate.open == 0 and gate.by_caller == {}


def test_concurrent_streams_are_served_or_refused_never_cancelled(capped: Harness) -> None:
    person = capped.demo["adult_resident"]["id_number"]
    request = lookup_pb2.BatchLookupRequest(
        dataset="population.basic",
        subject_keys=[person] * 200,
        fields=["name"],
        purpose=PURPOSE,
    )
    callers = ("agency-civil", "agency-far")

    async def run() -> tuple[collections.Counter[str], list[grpc.aio.AioRpcError]]:
        outcomes: collections.Counter[str] = collections.Counter()
        refusals: list[grpc.aio.AioRpcError] = []
        async with grpc.aio.insecure_channel(capped.target) as channel:
            stub = lookup_pb2_grpc.LookupServiceStub(channel)

            async def one(i: int) -> None:
                md = (("authorization", f"Bearer {capped.keys[callers[i % 2]]}"),)
                try:
                    items = [x async for x in stub.BatchLookup(request, metadata=md, timeout=60)]
                    assert len(items) == 200 and all(x.found for x in items)
                    outcomes["OK"] += 1
                except grpc.aio.AioRpcError as e:
                    outcomes[e.code().name] += 1
                    refusals.append(e)

            await asyncio.gather(*(one(i) for i in range(STREAMS)))
        return outcomes, refusals

    outcomes, refusals = asyncio.run(run())
    print(f"streams: {dict(outcomes)}")
    assert set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED"}, outcomes
    assert outcomes["OK"] >= 2 and sum(outcomes.values()) == STREAMS
    for e in refusals[:20]:
        status = rpc_status.from_call(e)
        assert status is not None
        kinds = {d.type_url.rsplit(".", 1)[-1]: d for d in status.details}
        info = error_details_pb2.ErrorInfo()
        kinds["ErrorInfo"].Unpack(info)
        assert info.reason == "STREAMS_EXHAUSTED" and info.metadata["request_id"]
        assert "RetryInfo" in kinds
    refused = [r for r in capped.audit_records() if r.get("reason") == "STREAMS_EXHAUSTED"]
    assert len(refused) == outcomes["RESOURCE_EXHAUSTED"]


def test_past_the_cap_a_stream_is_refused_at_once_and_audited(tmp_path: Path) -> None:
    """With no stream allowed, every BatchLookup is refused at once: RESOURCE_EXHAUSTED
    STREAMS_EXHAUSTED with ErrorInfo and RetryInfo, and an audit record."""
    keys, demo = make_data_dir(tmp_path / "data", persons=10, entities=4)
    h = start_guarded(
        tmp_path / "data",
        keys,
        demo,
        limits=LimitsConfig(streams=StreamLimits(per_caller=0, per_server=0)),
    )
    try:
        with grpc.insecure_channel(h.target) as channel:
            stub = lookup_pb2_grpc.LookupServiceStub(channel)
            request = lookup_pb2.BatchLookupRequest(
                dataset="population.basic",
                subject_keys=[demo["adult_resident"]["id_number"]],
                purpose=PURPOSE,
            )
            md = (("authorization", f"Bearer {keys['agency-civil']}"),)
            with pytest.raises(grpc.RpcError) as e:
                list(stub.BatchLookup(request, metadata=md, timeout=10))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(e.value)
        assert status is not None
        info = error_details_pb2.ErrorInfo()
        assert any(d.Unpack(info) for d in status.details if d.Is(info.DESCRIPTOR))
        assert info.reason == "STREAMS_EXHAUSTED"
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
        assert [r["reason"] for r in h.audit_records() if r["action"] == "lookup"] == [
            "STREAMS_EXHAUSTED"
        ]
    finally:
        h.stop()
