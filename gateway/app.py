"""Assemble the gateway's parts from a data directory."""

from __future__ import annotations

import logging

from gateway import keys
from gateway.audit import AuditLog
from gateway.auth import Authenticator
from gateway.callers import CallerRegistry
from gateway.catalog import load as load_catalog
from gateway.config import ServeConfig
from gateway.grants import GrantStore
from gateway.limits import Limits
from gateway.pipeline import Parts
from gateway.policy.bundle import load_bundle
from gateway.policy.check import check_in_subprocess
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine
from gateway.pool import Pool
from gateway.receipts import ReceiptSigner

log = logging.getLogger("govgw.app")


class PolicyRejected(RuntimeError):
    """The policy bundle failed its checks; the gateway will not serve it."""


def build_parts(config: ServeConfig) -> Parts:
    layout = config.layout
    keyring = keys.load(keys.keyring_path(layout.data_dir))
    catalog = load_catalog(config.catalog_path)
    # Policy is untrusted input: compile and test it in a child process first,
    # so a policy that crashes the engine cannot take this process down.
    problems = check_in_subprocess(config.policy_dir)
    if problems:
        raise PolicyRejected("; ".join(str(p) for p in problems))
    engine = RegorusEngine(load_bundle(config.policy_dir))
    log.info("policy %s loaded from %s", engine.version, config.policy_dir)
    return Parts(
        catalog=catalog,
        keyring=keyring,
        pool=Pool(layout.pool, keyring, catalog),
        decider=Decider(engine, GrantStore(layout.grants)),
        auth=Authenticator(CallerRegistry(layout.callers)),
        limits=Limits(),
        audit=AuditLog(layout.audit),
        signer=ReceiptSigner(keyring.receipt_key),
    )


def init_data_dir(config: ServeConfig) -> keys.KeyRing:
    """Create the data directory and its keys if they do not exist (idempotent)."""
    layout = config.layout
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    layout.audit.parent.mkdir(parents=True, exist_ok=True)
    return keys.load_or_generate(layout.data_dir)
