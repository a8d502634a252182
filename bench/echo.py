"""A bare gRPC echo server: the floor a Python gRPC service pays per call."""

from __future__ import annotations

import sys
from concurrent import futures

import grpc


def main() -> None:
    port, workers, payload = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    body = b"y" * payload

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return body

    handler = grpc.method_handlers_generic_handler(
        "govgw.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
