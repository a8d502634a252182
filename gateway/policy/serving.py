"""What a gateway process serves at start, on which backend, and who swaps it later.

At start the gateway serves the active version of <data-dir>/policy (or, with a
database URL, of the shared database: gateway.policy.versions_pg) if one
exists, else the policy directory it was configured with (the shipped
`policies/`), and the catalog of whichever bundle it serves (R1: one
catalog; a bundle whose catalog names other datasets or fields than the
pool holds is not served). A stored version is checked again in a child process before it
is served; if the active one does not load, the gateway serves the most
recent earlier version from the history that does (the last good version)
and says so in the log, rather than not starting.

The backend is chosen by config: `policy_backend` in ServeConfig.extra or
GOVGW_POLICY_BACKEND, "regorus" (embedded, the default) or "opa" (an OPA
sidecar at `opa_url` / GOVGW_OPA_URL, default http://127.0.0.1:8181).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.catalog import (
    DEFAULT_CATALOG,
    Catalog,
    CatalogMismatch,
    ServedCatalog,
    from_bundle_data,
)
from gateway.catalog import load as load_catalog
from gateway.grants import GrantStore
from gateway.policy.bundle import BundleError, PolicyBundle, load_bundle
from gateway.policy.check import check_in_subprocess
from gateway.policy.decider import Decider
from gateway.policy.engine import PolicyEngine, RegorusEngine
from gateway.policy.runtime import EngineFactory, PolicyRuntime
from gateway.policy.versions import VersionError, VersionStore
from gateway.policy.versions_pg import PostgresVersionStore
from gateway.storage import Storage

log = logging.getLogger("govgw.policy")

BACKENDS = ("regorus", "opa")
DEFAULT_OPA_URL = "http://127.0.0.1:8181"


class PolicyRejected(RuntimeError):
    """The policy bundle failed its checks; the gateway will not serve it."""


def policy_store(data_dir: Path, storage: Storage | None = None) -> VersionStore:
    """The versions of this deployment: on a shared database if `storage` is one
    (every node sees them), else in the data directory's policy folder."""
    if storage is not None and storage.shared:
        return PostgresVersionStore(storage, Path(data_dir) / "policy")
    return VersionStore(Path(data_dir) / "policy")


def backend_settings(extra: Mapping[str, str]) -> tuple[str, str]:
    backend = extra.get("policy_backend") or os.environ.get("GOVGW_POLICY_BACKEND") or "regorus"
    url = extra.get("opa_url") or os.environ.get("GOVGW_OPA_URL") or DEFAULT_OPA_URL
    if backend not in BACKENDS:
        raise ValueError(f"policy backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend, url


def engine_factory(extra: Mapping[str, str]) -> EngineFactory:
    backend, url = backend_settings(extra)
    if backend == "regorus":
        return RegorusEngine
    from gateway.policy.opa import OpaEngine, client_for

    client = client_for(url)
    return lambda bundle: OpaEngine(bundle, client)


@dataclass(frozen=True)
class Served:
    engine: PolicyEngine
    seq: int  # the pointer's seq when it was read (0: no version stored yet)
    note: str  # why the active version is not the one served, if it is not
    catalog: Catalog | None = None  # the served bundle's catalog


Structure = dict[str, tuple[str, ...]]


def load_served(
    policy_dir: Path, store: VersionStore, build: EngineFactory, structure: Structure | None = None
) -> Served:
    """The version to serve, its engine prepared and its catalog read; `structure`
    (the pool's datasets and fields) rules out a version whose catalog differs."""
    pointer = store.active() or {}
    seq = int(pointer.get("seq", 0) or 0)
    active = str(pointer.get("version", ""))
    if not active:
        bundle = load_bundle(policy_dir)
        catalog = _catalog(bundle, structure)
        return Served(_prepared(build, policy_dir, bundle), 0, "", catalog)
    failures: list[str] = []
    candidates = [active] + [h.version for h in reversed(store.history()) if h.version != active]
    for version in dict.fromkeys(candidates):
        try:
            _, bundle = store.load(version)
            catalog = _catalog(bundle, structure)
            with store.checkable(version) as directory:
                engine = _prepared(build, directory, bundle)
        except (VersionError, PolicyRejected, BundleError) as e:
            failures.append(f"{version}: {e}")
            log.error("policy %s cannot be served: %s", version, e)
            continue
        note = "" if version == active else f"active {active} does not load; serving {version}"
        if note:
            log.error("policy: %s", note)
        return Served(engine, seq, note, catalog)
    raise PolicyRejected("no stored policy version can be served: " + "; ".join(failures))


def _catalog(bundle: PolicyBundle, structure: Structure | None) -> Catalog:
    try:
        return from_bundle_data(bundle.data, structure)
    except CatalogMismatch as e:
        raise PolicyRejected(str(e)) from None


def data_dir_catalog(
    data_dir: Path,
    policy_dir: Path | None = None,
    shipped: Path = DEFAULT_CATALOG,
    storage: Storage | None = None,
) -> ServedCatalog:
    """The catalog a gateway on `data_dir` serves, for commands that read the data
    directory without a server (pool import, conflicts report, grants, keys rotate).

    The active policy version's catalog (its files checked against its manifest),
    or, as the server does, the most recent earlier version that can be read; the
    catalog shipped with the gateway before the first activation."""
    base = load_catalog(shipped)
    structure = base.structure()
    store = policy_store(data_dir, storage)
    active = store.active_version()
    if not active:
        version = load_bundle(Path(policy_dir or DEFAULT_CATALOG.parent.parent)).version
        return ServedCatalog(base, version, structure=structure)
    failures: list[str] = []
    candidates = [active] + [h.version for h in reversed(store.history()) if h.version != active]
    for version in dict.fromkeys(candidates):
        try:
            _, bundle = store.load(version)
            catalog = from_bundle_data(bundle.data, structure)
        except (VersionError, CatalogMismatch) as e:
            failures.append(f"{version}: {e}")
            continue
        if version != active:
            log.error("policy: active %s cannot be read; using the catalog of %s", active, version)
        return ServedCatalog(catalog, version, structure=structure)
    raise PolicyRejected("no stored policy version has a catalog to read: " + "; ".join(failures))


def _prepared(build: EngineFactory, directory: Path, bundle) -> PolicyEngine:
    # Policy is untrusted input: compile and test it in a child process first,
    # so a policy that crashes the engine cannot take this process down.
    problems = check_in_subprocess(directory)
    if problems:
        raise PolicyRejected("; ".join(str(p) for p in problems))
    engine = build(bundle)
    engine.prepare()
    return engine


def serving_decider(
    policy_dir: Path,
    data_dir: Path,
    grants: GrantStore,
    extra: Mapping[str, str],
    catalog_path: Path = DEFAULT_CATALOG,
    storage: Storage | None = None,
) -> Decider:
    """The Decider for `govgw serve`, with the PolicyRuntime that will keep it current,
    and the served catalog (`decider.catalog`) that follows it. `catalog_path` is
    the catalog of this gateway release: what the pool holds."""
    store = policy_store(data_dir, storage)
    build = engine_factory(extra)
    structure = load_catalog(catalog_path).structure()
    served = load_served(Path(policy_dir), store, build, structure)
    assert served.catalog is not None
    catalog = ServedCatalog(served.catalog, served.engine.version, structure=structure)
    decider = Decider(served.engine, grants, catalog=catalog)
    decider.runtime = PolicyRuntime(decider, store, build, seq=served.seq, note=served.note)
    log.info("policy %s served (%s)", served.engine.version, backend_settings(extra)[0])
    return decider
