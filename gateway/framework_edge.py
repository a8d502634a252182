"""The input edge of the framework's own services (health, reflection).

The route table's handlers take raw bytes and the pipeline decodes them, so a
malformed request is an INVALID_ARGUMENT with ErrorInfo. The health and
reflection services come from grpcio's packages with protobuf deserializers
of their own: bytes that do not decode would make gRPC log a traceback and
answer UNKNOWN naming a Python exception class. This interceptor gives those
handlers the same edge: it takes their deserializer over, and a request that
does not decode is refused with INVALID_ARGUMENT MALFORMED_REQUEST (ErrorInfo,
BadRequest), in one log line, without a traceback.

Their streams (Health/Watch, reflection) need no credentials, so they are
capped: past `max_streams` open at once a new one is refused at once with
RESOURCE_EXHAUSTED, and no client can hold the server's call slots with them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_status import rpc_status

from gateway.errors import exhausted, invalid

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
    await _abort(context, err)


async def _abort(context: grpc.aio.ServicerContext, err: Any) -> None:
    status = rpc_status.to_status(err.to_status())
    await context.abort(status.code, status.details, status.trailing_metadata)


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Wraps handlers of the services named in `framework` (not the route table's)."""

    def __init__(self, framework: Iterable[str], max_streams: int = 64) -> None:
        self.framework = tuple(f"/{s}/" for s in framework)
        self.max_streams = max_streams
        self.open_streams = 0

    async def _admit(self, context: grpc.aio.ServicerContext) -> None:
        if self.open_streams >= self.max_streams:
            log.info("framework stream refused: STREAMS_EXHAUSTED")
            await _abort(
                context,
                exhausted(
                    "STREAMS_EXHAUSTED",
                    f"at most {self.max_streams} health or reflection streams at once",
                    retry_after_s=1.0,
                ),
            )

    async def _stream(self, context: grpc.aio.ServicerContext, result: Any) -> AsyncIterator[Any]:
        """Count one open stream around a handler that yields or one that writes."""
        try:
            await self._admit(context)
        except BaseException:
            if hasattr(result, "aclose"):
                await result.aclose()
            elif hasattr(result, "close"):
                result.close()  # the handler's coroutine, never to run
            raise
        self.open_streams += 1
        try:
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:  # a handler that writes with context.write (grpcio's Health/Watch)
                await result
        finally:
            self.open_streams -= 1

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
                async for item in self._stream(context, inner_us(request, context)):
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

                async for item in self._stream(context, inner_ss(checked(), context)):
                    yield item

            return grpc.stream_stream_rpc_method_handler(stream_stream, decode, out)
        return handler
