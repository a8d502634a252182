"""The gRPC server: services, health, reflection, TLS, grace period and signals in one place."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from types import FrameType

import grpc
from govgw.v1 import (
    access_pb2,
    access_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    conflicts_pb2,
    conflicts_pb2_grpc,
    deadlines_pb2,
    deadlines_pb2_grpc,
    emergency_pb2,
    emergency_pb2_grpc,
    lookup_pb2,
    lookup_pb2_grpc,
    opening_pb2,
    opening_pb2_grpc,
    policy_admin_pb2,
    policy_admin_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
    subject_pb2,
    subject_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from gateway.access.applications import ApplicationStore
from gateway.access.corrections import CorrectionStore
from gateway.access.emergency import EmergencyStore
from gateway.access.opening import OpeningSuspensionStore
from gateway.app import policy_administration
from gateway.audit.index import AuditIndex
from gateway.config import ServeConfig
from gateway.pipeline import Parts, Pipeline
from gateway.services.access import AccessService, sweep_periodically
from gateway.services.catalog import CatalogService
from gateway.services.conflicts import ConflictService
from gateway.services.deadlines import DeadlineService
from gateway.services.emergency import EmergencyService, expire_periodically
from gateway.services.lookup import LookupService
from gateway.services.opening import OpeningService
from gateway.services.policy_admin import PolicyAdminService
from gateway.services.receipts import ReceiptService
from gateway.services.subjects import subject_service
from gateway.services.usage import UsageService
from gateway.services.verification import VerificationService
from gateway.tls import ensure_server_material

log = logging.getLogger("govgw.server")
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

SERVICE_NAMES = (
    verification_pb2.DESCRIPTOR.services_by_name["VerificationService"].full_name,
    lookup_pb2.DESCRIPTOR.services_by_name["LookupService"].full_name,
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    receipt_pb2.DESCRIPTOR.services_by_name["ReceiptService"].full_name,
    access_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name,
    usage_pb2.DESCRIPTOR.services_by_name["UsageService"].full_name,
    policy_admin_pb2.DESCRIPTOR.services_by_name["PolicyAdminService"].full_name,
    emergency_pb2.DESCRIPTOR.services_by_name["EmergencyService"].full_name,
    subject_pb2.DESCRIPTOR.services_by_name["SubjectService"].full_name,
    conflicts_pb2.DESCRIPTOR.services_by_name["ConflictService"].full_name,
    opening_pb2.DESCRIPTOR.services_by_name["OpeningService"].full_name,
    deadlines_pb2.DESCRIPTOR.services_by_name["DeadlineService"].full_name,
)


class GatewayServer:
    """grpc.aio on an event loop of its own thread, so tests and `serve` run it alike."""

    def __init__(self, config: ServeConfig, parts: Parts) -> None:
        config.validate()
        self.config = config
        self.parts = parts
        self.port = 0
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
        )
        pipeline = Pipeline(self.parts)
        verification_pb2_grpc.add_VerificationServiceServicer_to_server(
            VerificationService(pipeline), server
        )
        lookup_pb2_grpc.add_LookupServiceServicer_to_server(LookupService(pipeline), server)
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogService(pipeline), server)
        receipt_pb2_grpc.add_ReceiptServiceServicer_to_server(ReceiptService(pipeline), server)
        layout = self.config.layout
        # One index of every chain in the data directory, refreshed by the readers.
        audit = AuditIndex(layout.audit_index, layout.audit_files)
        access = AccessService(
            pipeline,
            ApplicationStore(
                layout.applications,
                self.parts.decider.grants,
                self.parts.catalog,
                jurisdiction=self.config.jurisdiction,
            ),
            audit=audit,
        )
        access_pb2_grpc.add_AccessServiceServicer_to_server(access, server)
        usage_pb2_grpc.add_UsageServiceServicer_to_server(UsageService(pipeline, audit), server)
        if self.parts.decider.emergencies is None:  # parts assembled without one
            self.parts.decider.emergencies = EmergencyStore(
                layout.emergencies,
                self.parts.decider.grants,
                self.parts.catalog,
                self.parts.auth.registry.get,
            )
        emergency = EmergencyService(pipeline, self.parts.decider.emergencies, audit=audit)
        emergency_pb2_grpc.add_EmergencyServiceServicer_to_server(emergency, server)
        subject_pb2_grpc.add_SubjectServiceServicer_to_server(
            subject_service(pipeline, self.config), server
        )
        conflicts_pb2_grpc.add_ConflictServiceServicer_to_server(ConflictService(pipeline), server)
        if self.parts.decider.suspensions is None:  # parts assembled without one
            self.parts.decider.suspensions = OpeningSuspensionStore(
                layout.opening_suspensions, self.parts.catalog
            )
        opening_pb2_grpc.add_OpeningServiceServicer_to_server(
            OpeningService(pipeline, self.parts.decider.suspensions), server
        )
        deadlines_pb2_grpc.add_DeadlineServiceServicer_to_server(
            DeadlineService(
                pipeline,
                access.store,
                CorrectionStore(
                    layout.corrections,
                    self.parts.catalog,
                    self.parts.keyring,
                    jurisdiction=self.config.jurisdiction,
                ),
            ),
            server,
        )
        runtime = self.parts.decider.runtime
        if runtime is not None:
            policy_admin_pb2_grpc.add_PolicyAdminServiceServicer_to_server(
                PolicyAdminService(pipeline, policy_administration(self.config, self.parts)), server
            )
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, HEALTH_SERVICE, reflection.SERVICE_NAME), server
        )
        if self.config.tls:
            self.port = server.add_secure_port(self.config.listen, self._credentials())
        else:
            self.port = server.add_insecure_port(self.config.listen)
        if self.port == 0:
            raise OSError(f"could not bind {self.config.listen}")
        await server.start()
        # Everything built so far lives as long as the server: keep it out of
        # the collector's way so collections stay short on the request path.
        gc.freeze()
        for name in ("", *SERVICE_NAMES):
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
        self._ready.set()
        await self._stop_requested.wait()
        if sweeper is not None:
            sweeper.cancel()
        if expiry is not None:
            expiry.cancel()
        # Stop taking calls, let calls in flight finish, then close the audit trail.
        await health.enter_graceful_shutdown()
        await server.stop(self._grace)
        if runtime is not None:
            runtime.stop()
        self.parts.audit.close()
        self.parts.pool.close()
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
