"""The input edge of the framework's own services (health, reflection).

The route table's handlers take raw bytes and the pipeline decodes them, so a
malformed request is an INVALID_ARGUMENT with ErrorInfo. The health and
reflection services come from grpcio's packages with protobuf deserializers
of their own: bytes that do not decode would make gRPC log a traceback and
answer UNKNOWN naming a Python exception class. This interceptor gives those
handlers the same edge: it takes their deserializer over, and a request that
does not decode is refused with INVALID_ARGUMENT MALFORMED_REQUEST (ErrorInfo,
BadRequest), in one log line, without a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_status import rpc_status

from gateway.errors import invalid

log = logging.getLogger("govgw.server")


class _Malformed(Exception):
    pass


def _safe(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def decode(raw: bytes) -> Any:
        if deserialize is None:
            return raw
        try:
            return deserialize(raw)
        except Exception:  # any decoding failure is the caller's bad input
            return _Malformed()

    return decode


async def _refuse(context: grpc.aio.ServicerContext, method: str) -> None:
    log.info("request to %s refused: MALFORMED_REQUEST", method)
    err = invalid("request", "is not a valid encoding of the request message", "MALFORMED_REQUEST")
    status = rpc_status.to_status(err.to_status())
    await context.abort(status.code, status.details, status.trailing_metadata)


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Wraps handlers of the services named in `framework` (not the route table's)."""

    def __init__(self, framework: Iterable[str]) -> None:
        self.framework = tuple(f"/{s}/" for s in framework)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or not method.startswith(self.framework):
            return handler
        decode = _safe(handler.request_deserializer)
        out = handler.response_serializer
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, _Malformed):
                    await _refuse(context, method)
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, decode, out)
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                if isinstance(request, _Malformed):
                    await _refuse(context, method)
                async for item in inner_us(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(unary_stream, decode, out)
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            async def stream_stream(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                async def checked() -> AsyncIterator[Any]:
                    async for request in requests:
                        if isinstance(request, _Malformed):
                            await _refuse(context, method)
                        yield request

                async for item in inner_ss(checked(), context):
                    yield item

            return grpc.stream_stream_rpc_method_handler(stream_stream, decode, out)
        return handler
