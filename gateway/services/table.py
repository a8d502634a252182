"""The route table of the whole gateway: every service's rows, assembled once.

The server serves exactly these rows and advertises exactly their services
(health, reflection); a service whose parts are missing (PolicyAdmin
without a policy runtime) contributes no rows, so it is not advertised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from govgw.v1 import (
    access_pb2,
    access_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    conflicts_pb2,
    conflicts_pb2_grpc,
    deadlines_pb2,
    deadlines_pb2_grpc,
    opening_pb2,
    opening_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)

from gateway.access.applications import ApplicationStore
from gateway.access.corrections import CorrectionStore
from gateway.access.emergency import EmergencyStore
from gateway.access.opening import OpeningSuspensionStore
from gateway.app import policy_administration
from gateway.audit.index import AuditIndex
from gateway.config import ServeConfig
from gateway.pipeline import Parts, Pipeline
from gateway.routes import Route
from gateway.services.access import AccessService
from gateway.services.catalog import CatalogService
from gateway.services.conflicts import ConflictService
from gateway.services.deadlines import DeadlineService
from gateway.services.emergency import EmergencyService
from gateway.services.lookup import LookupService
from gateway.services.opening import OpeningService
from gateway.services.policy_admin import PolicyAdminService
from gateway.services.receipts import ReceiptService
from gateway.services.subjects import subject_service
from gateway.services.usage import UsageService
from gateway.services.verification import VerificationService


def _name(module: Any, service: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[service].full_name)


@dataclass
class Assembled:
    routes: list[Route[Any, Any]]
    access: AccessService
    emergency: EmergencyService
    # TRANSITIONAL: servicers not yet turned into rows, with their add functions.
    legacy: list[tuple[Callable[[Any, Any], None], Any]] = field(default_factory=list)
    legacy_names: list[str] = field(default_factory=list)


def assemble(config: ServeConfig, parts: Parts, pipeline: Pipeline) -> Assembled:
    layout = config.layout
    # One index of every chain in the data directory, refreshed by the readers.
    audit = AuditIndex(layout.audit_index, layout.audit_files)
    if parts.decider.emergencies is None:  # parts assembled without one
        parts.decider.emergencies = EmergencyStore(
            layout.emergencies, parts.decider.grants, parts.catalog, parts.auth.registry.get
        )
    if parts.decider.suspensions is None:  # parts assembled without one
        parts.decider.suspensions = OpeningSuspensionStore(
            layout.opening_suspensions, parts.catalog
        )
    access = AccessService(
        pipeline,
        ApplicationStore(
            layout.applications,
            parts.decider.grants,
            parts.catalog,
            jurisdiction=config.jurisdiction,
        ),
        audit=audit,
    )
    emergency = EmergencyService(parts, parts.decider.emergencies, audit=audit)
    corrections = CorrectionStore(
        layout.corrections, parts.catalog, parts.keyring, jurisdiction=config.jurisdiction
    )
    routes: list[Route[Any, Any]] = [
        *VerificationService(parts).routes(),
        *LookupService(parts).routes(),
    ]
    out = Assembled(routes, access, emergency)

    def legacy(add: Callable[[Any, Any], None], servicer: Any, module: Any, name: str) -> None:
        out.legacy.append((add, servicer))
        out.legacy_names.append(_name(module, name))

    legacy(
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server,
        CatalogService(pipeline),
        catalog_pb2,
        "CatalogService",
    )
    legacy(
        receipt_pb2_grpc.add_ReceiptServiceServicer_to_server,
        ReceiptService(pipeline),
        receipt_pb2,
        "ReceiptService",
    )
    legacy(access_pb2_grpc.add_AccessServiceServicer_to_server, access, access_pb2, "AccessService")
    legacy(
        usage_pb2_grpc.add_UsageServiceServicer_to_server,
        UsageService(pipeline, audit),
        usage_pb2,
        "UsageService",
    )
    routes += emergency.routes()
    routes += subject_service(parts, config).routes()
    legacy(
        conflicts_pb2_grpc.add_ConflictServiceServicer_to_server,
        ConflictService(pipeline),
        conflicts_pb2,
        "ConflictService",
    )
    legacy(
        opening_pb2_grpc.add_OpeningServiceServicer_to_server,
        OpeningService(pipeline, parts.decider.suspensions),
        opening_pb2,
        "OpeningService",
    )
    legacy(
        deadlines_pb2_grpc.add_DeadlineServiceServicer_to_server,
        DeadlineService(pipeline, access.store, corrections),
        deadlines_pb2,
        "DeadlineService",
    )
    if parts.decider.runtime is not None:
        routes += PolicyAdminService(parts, policy_administration(config, parts)).routes()
    return out
