"""The route table of the whole gateway: every service's rows, assembled once.

The server serves exactly these rows and advertises exactly their services
(health, reflection); a service whose parts are missing (PolicyAdmin
without a policy runtime) contributes no rows, so it is not advertised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.access.applications import ApplicationStore
from gateway.access.corrections import CorrectionStore
from gateway.access.emergency import EmergencyStore
from gateway.access.opening import OpeningSuspensionStore
from gateway.app import policy_administration
from gateway.audit.index import AuditIndex
from gateway.config import ServeConfig
from gateway.pipeline import Parts
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


@dataclass
class Assembled:
    routes: list[Route[Any, Any]]
    access: AccessService
    emergency: EmergencyService  # its periodic expiry runs beside the server


def assemble(config: ServeConfig, parts: Parts) -> Assembled:
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
    emergency = EmergencyService(parts, parts.decider.emergencies, audit=audit)
    corrections = CorrectionStore(
        layout.corrections, parts.catalog, parts.keyring, jurisdiction=config.jurisdiction
    )
    routes: list[Route[Any, Any]] = [
        *VerificationService(parts).routes(),
        *LookupService(parts).routes(),
        *CatalogService(parts).routes(),
        *ReceiptService(parts).routes(),
        *access.routes(),
        *UsageService(parts, audit).routes(),
        *emergency.routes(),
        *subject_service(parts, config).routes(),
        *ConflictService(parts).routes(),
        *OpeningService(parts, parts.decider.suspensions).routes(),
        *DeadlineService(parts, access.store, corrections).routes(),
    ]
    # Served (and advertised) only where a policy runtime can take administration.
    if parts.decider.runtime is not None:
        routes += PolicyAdminService(parts, policy_administration(config, parts)).routes()
    return Assembled(routes, access, emergency)
