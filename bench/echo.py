"""A bare gRPC echo server: the floor a Python gRPC service pays per call.

`aio` (the default) is the same framework as the gateway (grpc.aio); `sync`
is grpcio's thread-pool server, shown for comparison. `edge` is grpc.aio used
the way the gateway's edge uses it, with no pipeline behind: the request read
as raw bytes from a stream_unary handler after the headers (under a receive
timeout), one pass-through server interceptor, the metadata read, a trailing
x-request-id and two deadline reads -- the framework's floor for the
gateway's own way of serving a call (issue 13).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures

import grpc

SERVICE, METHOD = "govgw.bench.Echo", "Echo"


def handler(body: bytes, aio: bool) -> grpc.GenericRpcHandler:
    if aio:

        async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return body

    else:

        def echo(request: bytes, context: grpc.ServicerContext) -> bytes:  # type: ignore[misc]
            return body

    return grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(echo)}
    )


class _PassThrough(grpc.aio.ServerInterceptor):
    """As the gateway's DecodeGuard for a route-table method: looked at, passed on."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith("/grpc."):
            return handler
        return handler


def edge_handler(body: bytes) -> grpc.GenericRpcHandler:
    ids = itertools.count(1)

    async def echo(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
        context.set_trailing_metadata((("x-request-id", f"req_{next(ids):012x}"),))
        md = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        del md
        context.time_remaining()
        async with asyncio.timeout(10.0):
            await anext(requests)
        context.time_remaining()
        return body

    return grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.stream_unary_rpc_method_handler(echo)}
    )


async def serve_edge(port: int, body: bytes) -> None:
    server = grpc.aio.server(interceptors=[_PassThrough()])
    server.add_generic_rpc_handlers((edge_handler(body),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def serve_aio(port: int, body: bytes) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler(body, aio=True),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def serve_sync(port: int, body: bytes) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((handler(body, aio=False),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def main() -> None:
    port, payload, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    body = b"y" * payload
    if kind == "aio":
        asyncio.run(serve_aio(port, body))
    elif kind == "edge":
        asyncio.run(serve_edge(port, body))
    else:
        serve_sync(port, body)


if __name__ == "__main__":
    main()
