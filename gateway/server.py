"""The gRPC server: services, health, reflection, TLS, grace period and signals in one place."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from types import FrameType

import grpc
from govgw.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    lookup_pb2,
    lookup_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.config import ServeConfig
from gateway.pipeline import Parts, Pipeline
from gateway.services.catalog import CatalogService
from gateway.services.lookup import LookupService
from gateway.services.receipts import ReceiptService
from gateway.services.verification import VerificationService
from gateway.tls import ensure_server_material

log = logging.getLogger("govgw.server")

SERVICE_NAMES = (
    verification_pb2.DESCRIPTOR.services_by_name["VerificationService"].full_name,
    lookup_pb2.DESCRIPTOR.services_by_name["LookupService"].full_name,
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    receipt_pb2.DESCRIPTOR.services_by_name["ReceiptService"].full_name,
)


class GatewayServer:
    def __init__(self, config: ServeConfig, parts: Parts) -> None:
        config.validate()
        self.config = config
        self.parts = parts
        self.port = 0
        self._stopped = threading.Event()
        self._health = health.HealthServicer(experimental_non_blocking=True)
        pipeline = Pipeline(parts)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc"),
            # Beyond this many queued calls gRPC answers RESOURCE_EXHAUSTED at
            # once instead of letting latency grow without bound.
            maximum_concurrent_rpcs=config.max_workers * 8,
            options=[("grpc.so_reuseport", 0)],
        )
        verification_pb2_grpc.add_VerificationServiceServicer_to_server(
            VerificationService(pipeline), self._server
        )
        lookup_pb2_grpc.add_LookupServiceServicer_to_server(LookupService(pipeline), self._server)
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server(
            CatalogService(pipeline), self._server
        )
        receipt_pb2_grpc.add_ReceiptServiceServicer_to_server(
            ReceiptService(pipeline), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )

    def start(self) -> int:
        if self.config.tls:
            self.port = self._server.add_secure_port(self.config.listen, self._credentials())
        else:
            self.port = self._server.add_insecure_port(self.config.listen)
        if self.port == 0:
            raise OSError(f"could not bind {self.config.listen}")
        self._server.start()
        for name in ("", *SERVICE_NAMES):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving on port %d (%s)", self.port, "TLS" if self.config.tls else "plaintext")
        return self.port

    def _credentials(self) -> grpc.ServerCredentials:
        d = ensure_server_material(self.config.data_dir)
        return grpc.ssl_server_credentials(
            [((d / "server.key").read_bytes(), (d / "server.crt").read_bytes())],
            root_certificates=(d / "ca.crt").read_bytes(),
            require_client_auth=self.config.require_client_cert,
        )

    def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, let calls in flight finish, then close the audit trail."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._health.enter_graceful_shutdown()
        self._server.stop(self.config.grace_s if grace is None else grace).wait()
        self.parts.audit.close()
        self.parts.pool.close()
        log.info("stopped")

    def wait(self) -> None:
        self._stopped.wait()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: shutting down", signal.Signals(signum).name)
            threading.Thread(target=self.stop, name="shutdown", daemon=True).start()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
