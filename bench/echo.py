"""A bare gRPC echo server: the floor a Python gRPC service pays per call.

`aio` (the default) is the same framework as the gateway (grpc.aio); `sync`
is grpcio's thread-pool server, shown for comparison.
"""

from __future__ import annotations

import asyncio
import sys
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
    else:
        serve_sync(port, body)


if __name__ == "__main__":
    main()
