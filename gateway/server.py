"""The gRPC server: services, health, reflection, TLS, grace period and signals in one place."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Sequence
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from gateway.app import assemble
from gateway.audit.shared_index import PeriodicIndexer, SharedAuditIndex
from gateway.batch import BatchRunner
from gateway.config import ServeConfig
from gateway.framework_edge import DecodeGuard
from gateway.metrics import MetricsEndpoint, TlsMaterial
from gateway.pipeline import Parts, Pipeline
from gateway.routes import Route, check_table, services
from gateway.services.access import sweep_periodically
from gateway.services.emergency import expire_periodically
from gateway.tls import ensure_server_material

log = logging.getLogger("govgw.server")
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
FRAMEWORK_SERVICES = (
    HEALTH_SERVICE,
    reflection.SERVICE_NAME,
    "grpc.reflection.v1.ServerReflection",
)


class GatewayServer:
    """grpc.aio on an event loop of its own thread, so tests and `serve` run it alike."""

    def __init__(self, config: ServeConfig, parts: Parts) -> None:
        config.validate()
        self.config = config
        self.parts = parts
        self.port = 0
        self.metrics_port = 0  # where /metrics is served, with --metrics-listen
        self._metrics: MetricsEndpoint | None = None
        self.routes: list[Any] = []  # the route table served, once started
        self._ready = threading.Event()
        self._done = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._grace = config.grace_s
        self._thread = threading.Thread(target=self._run, name="grpc-loop", daemon=True)

    def start(self) -> int:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error
        log.info("serving on port %d (%s)", self.port, "TLS" if self.config.tls else "plaintext")
        if self._metrics is not None:
            log.info("metrics on port %d (/metrics)", self.metrics_port)
        return self.port

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except (
            BaseException
        ) as e:  # surfaced to start() or logged; the thread must not die silently
            if not self._ready.is_set():
                self._startup_error = e
                self._ready.set()
            else:
                log.error("server loop stopped by %s", type(e).__name__)
        finally:
            self._done.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        server = grpc.aio.server(
            # Beyond this many calls in flight gRPC answers RESOURCE_EXHAUSTED
            # at once instead of letting latency grow without bound.
            maximum_concurrent_rpcs=self.config.max_concurrent_rpcs,
            options=[("grpc.so_reuseport", 1 if self.config.reuse_port else 0)],
            # The framework's services (health, reflection) get the route table's input
            # edge: bytes that do not decode are INVALID_ARGUMENT, not UNKNOWN.
            interceptors=[DecodeGuard(FRAMEWORK_SERVICES)],
        )
        pipeline = Pipeline(self.parts)
        assembled = assemble(self.config, self.parts)
        table = self.routes = assembled.routes
        access, emergency = assembled.access, assembled.emergency
        runtime = self.parts.decider.runtime
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        server.add_generic_rpc_handlers(generic_handlers(table, pipeline))
        served = services(table)
        reflection.enable_server_reflection(
            (*served, HEALTH_SERVICE, reflection.SERVICE_NAME), server
        )
        try:
            if self.config.tls:
                self.port = server.add_secure_port(self.config.listen, self._credentials())
            else:
                self.port = server.add_insecure_port(self.config.listen)
        except RuntimeError:  # grpcio's "Failed to bind": one line for the operator
            self.port = 0
        if self.port == 0:
            raise OSError(
                f"cannot listen on {self.config.listen}: the address is in use or not"
                " available (another govgw serving there?)"
            )
        if self.config.metrics_listen and self.parts.metrics is not None:
            host, port = self.config.metrics_host_port()
            self._metrics = MetricsEndpoint(
                host, port, self.parts.metrics.registry, metrics_tls(self.config)
            )
            self.metrics_port = self._metrics.port
        await server.start()
        # Everything built so far lives as long as the server: keep it out of
        # the collector's way so collections stay short on the request path.
        gc.freeze()
        for name in ("", *served):
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if runtime is not None:
            # Follow policy activations made by any process sharing the data directory.
            runtime.start(self._loop)
        sweeper = (
            asyncio.create_task(sweep_periodically(access, self.config.sweep_interval_s))
            if self.config.sweep_interval_s > 0
            else None
        )
        expiry = (
            asyncio.create_task(expire_periodically(emergency, self.config.emergency_interval_s))
            if self.config.emergency_interval_s > 0
            else None
        )
        # On a shared database this node's calls reach the shared audit index within a
        # second, for every node's readers (gateway/audit/shared_index.py).
        indexer = None
        if isinstance(assembled.audit, SharedAuditIndex):
            # Known to the other nodes before the first call: their readers then read
            # this node's chain where it is reachable, even before it is indexed.
            await asyncio.to_thread(assembled.audit.register_quietly)
            indexer = PeriodicIndexer(assembled.audit).start()
        self._ready.set()
        await self._stop_requested.wait()
        if indexer is not None:
            indexer.stop()
        if sweeper is not None:
            sweeper.cancel()
        if expiry is not None:
            expiry.cancel()
        # Stop taking calls, let calls in flight finish, then close the audit trail.
        await health.enter_graceful_shutdown()
        await server.stop(self._grace)
        if runtime is not None:
            runtime.stop()
        # The in-process state writes its last changes (its windows outlive the
        # process); Redis closes its connections.
        await self.parts.limits.state.aclose()
        self.parts.audit.close()
        self.parts.pool.close()
        if self._metrics is not None:  # last: a scrape during the drain still answers
            await asyncio.to_thread(self._metrics.close)
        log.info("stopped")

    def _credentials(self) -> grpc.ServerCredentials:
        d = ensure_server_material(self.config.data_dir)
        return grpc.ssl_server_credentials(
            [((d / "server.key").read_bytes(), (d / "server.crt").read_bytes())],
            root_certificates=(d / "ca.crt").read_bytes(),
            require_client_auth=self.config.require_client_cert,
        )

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop; returns when the server and the audit trail are closed."""
        if grace is not None:
            self._grace = grace
        loop, requested = self._loop, self._stop_requested
        if loop is not None and requested is not None and not self._done.is_set():
            loop.call_soon_threadsafe(requested.set)
        self._done.wait()

    def wait(self) -> None:
        # Wake up now and then so signal handlers run in the main thread.
        while not self._done.wait(0.5):
            pass

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: shutting down", signal.Signals(signum).name)
            threading.Thread(target=self.stop, name="shutdown", daemon=True).start()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)


def metrics_tls(config: ServeConfig) -> TlsMaterial | None:
    """With --tls, /metrics is HTTPS with the gateway's own certificate (and mTLS with
    --require-client-cert): Prometheus trusts the data directory's CA."""
    if not config.tls:
        return None
    d = ensure_server_material(config.data_dir)
    return TlsMaterial(d / "server.crt", d / "server.key", d / "ca.crt", config.require_client_cert)


def generic_handlers(
    routes: Sequence[Route[Any, Any]], pipeline: Pipeline
) -> list[grpc.GenericRpcHandler]:
    """One generic handler per service, its methods run by the pipeline."""
    check_table(routes)
    by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for route in routes:
        by_service.setdefault(route.service, {})[route.method.name] = _handler(route, pipeline)
    return [grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items()]


def _handler(route: Route[Any, Any], pipeline: Pipeline) -> grpc.RpcMethodHandler:
    """A handler that takes the request as a stream of raw bytes, whatever the method's
    shape: the pipeline then authenticates on the headers, before it waits for the
    message, so a caller without credentials cannot hold a call slot by never sending
    one (and a caller with them waits at most `pipeline.RECEIVE_TIMEOUT_S`). No
    deserializer: the pipeline decodes after authenticating."""
    serialize = route.response_type.SerializeToString
    if route.batch is not None:  # items streamed in, result chunks streamed out
        runner = BatchRunner(pipeline)

        async def batch(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            async for chunk in runner.serve(route, requests, context):
                yield chunk

        return grpc.stream_stream_rpc_method_handler(batch, response_serializer=serialize)
    if route.streams:

        async def stream(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            async for item in pipeline.serve_stream(route, requests, context):
                yield item

        return grpc.stream_stream_rpc_method_handler(stream, response_serializer=serialize)

    async def unary(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
        return await pipeline.serve(route, requests, context)

    return grpc.stream_unary_rpc_method_handler(unary, response_serializer=serialize)
