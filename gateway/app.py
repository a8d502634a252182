"""Assemble the gateway's parts from a data directory, and its route table.

The wiring: the one module that knows every part's class, so that the parts
themselves need not know each other's (no part imports this module). The
route table is assembled here too (`assemble`): the server serves exactly
its rows and advertises exactly their services (health, reflection); a
service whose parts are missing (PolicyAdmin without a policy runtime)
contributes no rows, so it is not advertised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from gateway import keys
from gateway.access.applications import ApplicationStore
from gateway.access.corrections import CorrectionStore
from gateway.access.disputes import DisputedFields, index_path
from gateway.access.emergency import EmergencyStore
from gateway.access.holidays import SUPPLEMENTS
from gateway.access.opening import OpeningSuspensionStore
from gateway.access.subject_tokens import IssuerRegistry
from gateway.access.withdrawals import WithdrawalStore
from gateway.audit import AuditLog
from gateway.audit.index import BaseAuditIndex
from gateway.audit.shared_index import SharedAuditIndex, index_for
from gateway.auth import Authenticator
from gateway.callers import CallerRegistry
from gateway.catalog import ServedCatalog
from gateway.config import ServeConfig
from gateway.files import tighten_tree, write_private
from gateway.grants import GrantStore
from gateway.limits import Limits
from gateway.metrics import Metrics
from gateway.oracle import Oracle
from gateway.pipeline import Parts
from gateway.policy.administration import PolicyAdministration
from gateway.policy.serving import PolicyRejected as PolicyRejected  # re-exported
from gateway.policy.serving import backend_settings, engine_factory, policy_store, serving_decider
from gateway.pool import Pool
from gateway.receipts import ReceiptSigner
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
from gateway.services.subject_review import ProviderReview
from gateway.services.subjects import SubjectService
from gateway.services.usage import UsageService
from gateway.services.verification import VerificationService
from gateway.services.verification_batch import IdentityBatch
from gateway.state import open_state
from gateway.state.replay import ReplayGuard
from gateway.storage import database_url, open_storage

log = logging.getLogger("govgw.app")


def build_parts(config: ServeConfig) -> Parts:
    layout = config.layout
    # Everything in the data directory is owner-only (R12): one made by an older
    # govgw is tightened before serving from it; new files are made private.
    tighten_tree(layout.data_dir)
    keyring = keys.load(keys.keyring_path(layout.data_dir))
    # The shared stores' backend (SQLite here, or PostgreSQL); a bad URL or a newer
    # schema stops the start here, before anything serves.
    storage = open_storage(database_url(config.database_url or None), layout.data_dir)
    # Holiday schedules entered by the operator (the directory, or the database).
    SUPPLEMENTS.use(layout.calendar_dir, storage)
    # The active policy version (or config.policy_dir before the first activation),
    # checked in a child process first; its runtime follows later activations.
    grants = GrantStore(layout.grants, storage=storage)
    decider = serving_decider(
        config.policy_dir, layout.data_dir, grants, config.extra, config.catalog_path, storage
    )
    # One catalog (R1): the served version's, swapped with its engine. Every part
    # below holds this one object and so reads the catalog the policy decides with.
    catalog = decider.catalog
    assert catalog is not None
    registry = CallerRegistry(storage)
    # One store for the decider (input.emergencies) and EmergencyService, so a
    # declaration or an end is seen by the next decision of this process.
    decider.emergencies = EmergencyStore(
        layout.emergencies, grants, catalog, registry.get, storage=storage
    )
    # Datasets whose opening is suspended (data.suspensions, R9): the decider's, and
    # OpeningService's, so a suspension changes this process's next decision.
    decider.suspensions = OpeningSuspensionStore(layout.opening_suspensions, catalog, storage)
    withdrawals = WithdrawalStore(layout.withdrawals, catalog, keyring, storage)
    audit = AuditLog(layout.audit, commit_delay_s=config.audit_commit_delay_s)
    metrics = Metrics() if config.metrics_enabled else None
    if metrics is not None:
        audit.metrics = decider.metrics = metrics
        metrics.policy_served(decider.serving.version)
    return Parts(
        catalog=catalog,
        keyring=keyring,
        pool=Pool(layout.pool, keyring, catalog, storage),
        decider=decider,
        auth=Authenticator(registry, certificates=config.tls),
        limits=Limits(),
        audit=audit,
        signer=ReceiptSigner(keyring.receipt_key, keyring.receipt_verify_only),
        withdrawn=withdrawals.withdrawn,
        disputed=DisputedFields(index_path(layout.corrections), keyring.subject_hash, storage),
        metrics=metrics,
    )


def attach(parts: Parts, config: ServeConfig) -> Parts:
    """Give assembled parts their configured limits and oracle on the configured state.

    Apart from `build_parts` because opening the state may reach Redis: `serve`
    and the tests call it right after `build_parts`, offline tools do not.
    """
    # In-process windows are kept in the data directory so that a restart does
    # not hand every caller a fresh budget (Redis keeps its own, with AOF on).
    state = open_state(config.redis_url, config.layout.state)
    # Whether this directory's suspensions live in shared state, for `callers reinstate`:
    # the marker holds no URL (it may carry a password), only that there is one.
    marker = config.layout.shared_state_marker
    if state.shared and not marker.exists():
        write_private(marker, b"redis\n")
    elif not state.shared:
        marker.unlink(missing_ok=True)
    if not state.shared and not getattr(state, "persistent", False):
        log.warning("in-process limits are not kept: a restart starts every window afresh")
    parts.limits = Limits.from_config(config.limits, state)
    parts.oracle = Oracle(state, parts.auth.registry, config.oracle)
    parts.replay = ReplayGuard(state)
    return parts


def policy_administration(config: ServeConfig, parts: Parts) -> PolicyAdministration:
    """What PolicyAdminService needs: the version store, the runtime, the served catalog."""
    layout = config.layout
    runtime = parts.decider.runtime
    return PolicyAdministration(
        # The versions the runtime follows (the data directory's, or the shared database's).
        runtime.store if runtime is not None else policy_store(layout.data_dir),
        runtime,
        engine_factory(config.extra),
        served_catalog=_pool_structure(parts),
        audit_files=layout.audit_files,  # one chain per worker process, replayed together
        audit_index=layout.audit_index,
        grants=parts.decider.grants,  # read through the stores: on PostgreSQL, the shared ones
        callers=parts.auth.registry,
        backend=backend_settings(config.extra)[0],
        emergencies=parts.decider.emergencies,  # calls under an emergency replay with it
    )


def _pool_structure(parts: Parts) -> dict[str, tuple[str, ...]]:
    catalog = parts.catalog
    if isinstance(catalog, ServedCatalog):
        return catalog.pool_structure
    return catalog.structure()


@dataclass
class Assembled:
    routes: list[Route[Any, Any]]
    access: AccessService
    emergency: EmergencyService  # its periodic expiry runs beside the server
    # The audit index the readers use; a shared one is kept current beside the server.
    audit: BaseAuditIndex | None = None


def assemble(config: ServeConfig, parts: Parts) -> Assembled:
    layout = config.layout
    # The one storage of this process (build_parts opened it for the registry).
    storage = parts.auth.registry.storage
    # One index of every chain in the data directory, refreshed by the readers; on a
    # shared database, the shared index of every node's chains (this node's keyed by
    # its node id).
    audit = index_for(layout, storage)
    if isinstance(audit, SharedAuditIndex):
        log.info("audit: node %s indexes its chains into the shared audit index", audit.node)
    if parts.decider.emergencies is None:  # parts assembled without one
        parts.decider.emergencies = EmergencyStore(
            layout.emergencies,
            parts.decider.grants,
            parts.catalog,
            parts.auth.registry.get,
            storage=storage,
        )
    if parts.decider.suspensions is None:  # parts assembled without one
        parts.decider.suspensions = OpeningSuspensionStore(
            layout.opening_suspensions, parts.catalog, storage
        )
    access = AccessService(
        parts,
        ApplicationStore(
            layout.applications,
            parts.decider.grants,
            parts.catalog,
            jurisdiction=config.jurisdiction,
            storage=storage,
        ),
        audit=audit,
    )
    emergency = EmergencyService(parts, parts.decider.emergencies, audit=audit)
    # One store of each kind, shared by the services that read or write it.
    corrections = CorrectionStore(
        layout.corrections,
        parts.catalog,
        parts.keyring,
        jurisdiction=config.jurisdiction,
        storage=storage,
    )
    # The read step's store (build_parts), so this node honours its own withdrawal at
    # once on PostgreSQL too, before the announcement comes back.
    held = getattr(parts.withdrawn, "__self__", None)
    withdrawals = (
        held
        if isinstance(held, WithdrawalStore)
        else WithdrawalStore(layout.withdrawals, parts.catalog, parts.keyring, storage)
    )
    subjects = SubjectService(
        parts,
        issuers=IssuerRegistry(layout.subject_issuers, storage),
        corrections=corrections,
        withdrawals=withdrawals,
        audit=audit,
    )
    verification = VerificationService(parts)
    routes: list[Route[Any, Any]] = [
        *verification.routes(),
        IdentityBatch(verification).route(),
        *LookupService(parts).routes(),
        *CatalogService(parts).routes(),
        *ReceiptService(parts).routes(),
        *access.routes(),
        *UsageService(parts, audit).routes(),
        *emergency.routes(),
        *subjects.routes(),
        *ProviderReview(parts, corrections, withdrawals).routes(),
        *ConflictService(parts).routes(),
        *OpeningService(parts, parts.decider.suspensions).routes(),
        *DeadlineService(parts, access.store, corrections).routes(),
    ]
    # Served (and advertised) only where a policy runtime can take administration.
    if parts.decider.runtime is not None:
        routes += PolicyAdminService(parts, policy_administration(config, parts)).routes()
    if storage.shared:
        # On SQLite these rows' short local transactions run inline, as they always
        # did; on PostgreSQL a query is network I/O: it never blocks the event loop.
        routes = [
            replace(r, in_thread=True) if r.service in _ACCESS_SERVICES else r for r in routes
        ]
    return Assembled(routes, access, emergency, audit)


# The services whose handlers read or write the access stores (applications,
# corrections, withdrawals, emergencies, opening suspensions).
_ACCESS_SERVICES = frozenset(
    f"govgw.v1.{name}"
    for name in (
        "AccessService",
        "EmergencyService",
        "SubjectService",  # with the providers' review of corrections and withdrawals
        "OpeningService",
        "DeadlineService",
    )
)
