"""Assemble the gateway's parts from a data directory.

The wiring: the one module that knows every part's class, so that the parts
themselves need not know each other's (no part imports this module).
"""

from __future__ import annotations

import logging

from gateway import keys
from gateway.access.disputes import DisputedFields, index_path
from gateway.access.emergency import EmergencyStore
from gateway.access.holidays import SUPPLEMENTS
from gateway.access.opening import OpeningSuspensionStore
from gateway.access.withdrawals import WithdrawalStore
from gateway.audit import AuditLog
from gateway.auth import Authenticator
from gateway.callers import CallerRegistry
from gateway.catalog import ServedCatalog
from gateway.config import ServeConfig
from gateway.grants import GrantStore
from gateway.limits import Limits
from gateway.oracle import Oracle
from gateway.pipeline import Parts
from gateway.policy.administration import PolicyAdministration
from gateway.policy.serving import PolicyRejected as PolicyRejected  # re-exported
from gateway.policy.serving import backend_settings, engine_factory, policy_store, serving_decider
from gateway.pool import Pool
from gateway.receipts import ReceiptSigner
from gateway.state import open_state
from gateway.state.replay import ReplayGuard

log = logging.getLogger("govgw.app")


def build_parts(config: ServeConfig) -> Parts:
    layout = config.layout
    keyring = keys.load(keys.keyring_path(layout.data_dir))
    SUPPLEMENTS.use(layout.calendar_dir)  # holiday schedules entered by the operator
    # The active policy version (or config.policy_dir before the first activation),
    # checked in a child process first; its runtime follows later activations.
    grants = GrantStore(layout.grants)
    decider = serving_decider(
        config.policy_dir, layout.data_dir, grants, config.extra, config.catalog_path
    )
    # One catalog (R1): the served version's, swapped with its engine. Every part
    # below holds this one object and so reads the catalog the policy decides with.
    catalog = decider.catalog
    assert catalog is not None
    registry = CallerRegistry(layout.callers)
    # One store for the decider (input.emergencies) and EmergencyService, so a
    # declaration or an end is seen by the next decision of this process.
    decider.emergencies = EmergencyStore(layout.emergencies, grants, catalog, registry.get)
    # Datasets whose opening is suspended (data.suspensions, R9): the decider's, and
    # OpeningService's, so a suspension changes this process's next decision.
    decider.suspensions = OpeningSuspensionStore(layout.opening_suspensions, catalog)
    withdrawals = WithdrawalStore(layout.withdrawals, catalog, keyring)
    return Parts(
        catalog=catalog,
        keyring=keyring,
        pool=Pool(layout.pool, keyring, catalog),
        decider=decider,
        auth=Authenticator(registry),
        limits=Limits(),
        audit=AuditLog(layout.audit),
        signer=ReceiptSigner(keyring.receipt_key),
        withdrawn=withdrawals.withdrawn,
        disputed=DisputedFields(index_path(layout.corrections), keyring.subject_hash),
    )


def attach(parts: Parts, config: ServeConfig) -> Parts:
    """Give assembled parts their configured limits and oracle on the configured state.

    Apart from `build_parts` because opening the state may reach Redis: `serve`
    and the tests call it right after `build_parts`, offline tools do not.
    """
    state = open_state(config.redis_url)
    parts.limits = Limits.from_config(config.limits, state)
    parts.oracle = Oracle(state, parts.auth.registry, config.oracle)
    parts.replay = ReplayGuard(state)
    return parts


def policy_administration(config: ServeConfig, parts: Parts) -> PolicyAdministration:
    """What PolicyAdminService needs: the version store, the runtime, the served catalog."""
    layout = config.layout
    return PolicyAdministration(
        policy_store(layout.data_dir),
        parts.decider.runtime,
        engine_factory(config.extra),
        served_catalog=_pool_structure(parts),
        audit_files=layout.audit_files,  # one chain per worker process, replayed together
        audit_index=layout.audit_index,
        grants_path=layout.grants,
        callers_path=layout.callers,
        backend=backend_settings(config.extra)[0],
        emergencies_path=layout.emergencies,  # calls under an emergency replay with it
    )


def _pool_structure(parts: Parts) -> dict[str, tuple[str, ...]]:
    catalog = parts.catalog
    if isinstance(catalog, ServedCatalog):
        return catalog.pool_structure
    return catalog.structure()
