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
    emergency_pb2,
    emergency_pb2_grpc,
    lookup_pb2,
    lookup_pb2_grpc,
    policy_admin_pb2,
    policy_admin_pb2_grpc,
    subject_pb2,
    subject_pb2_grpc,
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
        parts,
        ApplicationStore(
            layout.applications,
            parts.decider.grants,
            parts.catalog,
            jurisdiction=config.jurisdiction,
        ),
        audit=audit,
    )
    emergency = EmergencyService(pipeline, parts.decider.emergencies, audit=audit)
    corrections = CorrectionStore(
        layout.corrections, parts.catalog, parts.keyring, jurisdiction=config.jurisdiction
    )
    routes: list[Route[Any, Any]] = [*VerificationService(parts).routes()]
    routes += CatalogService(parts).routes()
    routes += ReceiptService(parts).routes()
    routes += access.routes()
    routes += UsageService(parts, audit).routes()
    routes += ConflictService(parts).routes()
    routes += OpeningService(parts, parts.decider.suspensions).routes()
    routes += DeadlineService(parts, access.store, corrections).routes()
    out = Assembled(routes, access, emergency)

    def legacy(add: Callable[[Any, Any], None], servicer: Any, module: Any, name: str) -> None:
        out.legacy.append((add, servicer))
        out.legacy_names.append(_name(module, name))

    legacy(
        lookup_pb2_grpc.add_LookupServiceServicer_to_server,
        LookupService(pipeline),
        lookup_pb2,
        "LookupService",
    )
    legacy(
        emergency_pb2_grpc.add_EmergencyServiceServicer_to_server,
        emergency,
        emergency_pb2,
        "EmergencyService",
    )
    legacy(
        subject_pb2_grpc.add_SubjectServiceServicer_to_server,
        subject_service(pipeline, config),
        subject_pb2,
        "SubjectService",
    )
    if parts.decider.runtime is not None:
        legacy(
            policy_admin_pb2_grpc.add_PolicyAdminServiceServicer_to_server,
            PolicyAdminService(pipeline, policy_administration(config, parts)),
            policy_admin_pb2,
            "PolicyAdminService",
        )
    return out
