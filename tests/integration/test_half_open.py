"""Calls that send headers and never a request message (a red-team finding).

Every route authenticates on the headers, before it waits for the message, so
a caller without credentials holds no call slot: such calls are refused at once
(UNAUTHENTICATED, audited), and more of them than the server's call slots
(max_concurrent_rpcs) do not lock anyone out.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import grpc
import pytest
from govgw.v1 import verification_pb2

from tests.support import Harness

PATH = "/govgw.v1.VerificationService/VerifyIdentity"


async def _never() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()  # headers sent; the message never comes
    yield b""


@pytest.mark.requirement("R12")
def test_half_open_calls_without_credentials_are_refused_at_once(gateway: Harness) -> None:
    slots = gateway.config.max_concurrent_rpcs

    async def run() -> collections.Counter[str]:
        seen: collections.Counter[str] = collections.Counter()
        async with grpc.aio.insecure_channel(gateway.target) as channel:
            method = channel.stream_unary(PATH)

            async def one() -> None:
                try:
                    await method(_never(), timeout=20)
                    seen["OK"] += 1
                except grpc.aio.AioRpcError as e:
                    seen[e.code().name] += 1

            await asyncio.gather(*(one() for _ in range(slots + 100)))
        return seen

    def refused() -> int:
        return sum(
            1
            for r in gateway.audit_records()
            if r["action"] == "verify.identity" and r["reason"] == "CREDENTIALS_MISSING"
        )

    before = refused()
    seen = asyncio.run(run())
    # Every call was refused by the gateway itself, at once, and audited; none waited
    # for a slot (RESOURCE_EXHAUSTED) or for its deadline. (A client may see a few as
    # CANCELLED: the refusal can reach it while it is still sending its stream.)
    assert set(seen) <= {"UNAUTHENTICATED", "CANCELLED"}, seen
    assert seen["CANCELLED"] <= 10, seen
    assert refused() - before == seen["UNAUTHENTICATED"]
    # The server's slots are free: a real check goes through.
    person = gateway.demo["adult_resident"]
    with gateway.client("counter-wenchuan") as gw:
        assert gw.verify_identity(
            person["name"], person["id_number"], purpose="户籍业务办理"
        ).matched


def test_a_unary_client_is_served_as_before(gateway: Harness) -> None:
    """The routes take their request as a stream, so the pipeline can authenticate first;
    to an ordinary unary client nothing changes."""
    person = gateway.demo["adult_resident"]
    with grpc.insecure_channel(gateway.target) as channel:
        stub = channel.unary_unary(
            PATH,
            request_serializer=verification_pb2.VerifyIdentityRequest.SerializeToString,
            response_deserializer=verification_pb2.VerifyIdentityResponse.FromString,
        )
        reply = stub(
            verification_pb2.VerifyIdentityRequest(
                name=person["name"], id_number=person["id_number"], purpose="户籍业务办理"
            ),
            metadata=(("authorization", f"Bearer {gateway.keys['counter-wenchuan']}"),),
            timeout=10,
        )
    assert reply.result == verification_pb2.VERIFICATION_RESULT_MATCH
