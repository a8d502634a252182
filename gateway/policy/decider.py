"""The decider: policy input in, Plan out, cached.

A plan depends on the caller, action, dataset, purpose, grants, active
emergencies (input.emergencies, R11) and policy version, never on the record,
so it is cached under exactly those (the two stores by their versions). Time
enters only through grant and emergency expiry, and a plan carries its expiry:
a cached plan is not used past it. Every request goes through `decide`, so a hit is one dict lookup
under a lock; the engine runs only on a miss.

A policy that errors or is undefined denies (POLICY_ERROR): the decider never
raises to the request pipeline.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.catalog import Catalog, CatalogMismatch, ServedCatalog, from_bundle_data
from gateway.grants import GrantStore
from gateway.metrics import Metrics
from gateway.plan import Plan
from gateway.policy.engine import PolicyEngine, rego_error_text

log = logging.getLogger(__name__)

CacheKey = tuple[str, ...]

# The engine a request has pinned (`Decider.pinned`), with the catalog of the same version.
_PINNED_ENGINE: ContextVar[tuple[Decider, PolicyEngine] | None] = ContextVar(
    "govgw_pinned_engine", default=None
)


def rfc3339(now: datetime) -> str:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # the gateway's clock is UTC
    return now.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _expiry(plan: Plan) -> datetime | None:
    if not plan.expires_at:
        return None
    try:
        at = datetime.fromisoformat(plan.expires_at.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # unreadable expiry: never reuse
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def engine_catalog(
    engine: PolicyEngine, structure: dict[str, tuple[str, ...]] | None = None
) -> Catalog:
    """The catalog of the bundle `engine` serves; CatalogMismatch if it cannot be
    served (unreadable, or other datasets or fields than `structure`)."""
    bundle = getattr(engine, "bundle", None)
    if bundle is None:
        raise CatalogMismatch(f"policy {engine.version} carries no bundle to read a catalog from")
    return from_bundle_data(bundle.data, structure)


class PolicyInputStore(Protocol):
    """A store whose contents enter every decision: the emergencies
    (gateway.access.emergency) and the opening suspensions (gateway.access.opening).

    Named by what the decider uses, so that policy does not import the access
    workflows, which themselves decide through policy."""

    @property
    def version(self) -> int: ...

    def reload(self) -> None: ...

    def policy_view(self) -> tuple[int, Any]: ...


class Decider:
    def __init__(
        self,
        engine: PolicyEngine,
        grants: GrantStore,
        *,
        cache_size: int = 10000,
        emergencies: PolicyInputStore | None = None,
        catalog: ServedCatalog | None = None,
        suspensions: PolicyInputStore | None = None,
    ) -> None:
        self._engine = engine
        # The catalog of the served version (gateway.app hands it to every part
        # that reads the catalog); swapped with the engine, in the same step.
        self.catalog = catalog
        self.grants = grants
        # Active emergencies go into the policy input (input.emergencies, R11).
        self.emergencies = emergencies
        # Datasets whose opening is suspended or withdrawn (data.suspensions, R9).
        self.suspensions = suspensions
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[CacheKey, tuple[Plan, datetime | None]] = OrderedDict()
        # The grants handed to the engine and the active emergencies put into its
        # input, rebuilt only when a store's version moves, so the engine sees the
        # same mapping object (and skips reloading) until then.
        self._data: tuple[tuple[int, int, int], Mapping[str, Any], list[Any]] | None = None
        self.hits = 0
        self.misses = 0
        # Prometheus counters of the same (gateway.app sets it with --metrics-listen).
        self.metrics: Metrics | None = None
        # The PolicyRuntime that swaps this decider's engine when another version is
        # activated (gateway.policy.serving sets it; None for a fixed engine).
        self.runtime: Any = None

    @property
    def engine(self) -> PolicyEngine:
        pinned = _PINNED_ENGINE.get()
        if pinned is not None and pinned[0] is self:
            return pinned[1]
        return self._engine

    @engine.setter
    def engine(self, engine: PolicyEngine) -> None:
        self.swap(engine)

    @property
    def serving(self) -> PolicyEngine:
        """The engine served now, whatever the calling request has pinned."""
        return self._engine

    def pinned(self) -> _Pinned:
        """One request, one version: its plans and every catalog read it makes are
        of the version served when it started, even if a swap lands at one of its
        awaits (limits, audit, a thread). Use as `with decider.pinned():`."""
        return _Pinned(self)

    def decide(
        self,
        *,
        caller: Mapping[str, str],
        action: str,
        dataset: str,
        purpose: str,
        now: datetime,
    ) -> Plan:
        # One read of the engine per decision: a swap (policy activation) between
        # the cache key and the evaluation must not mix two versions.
        engine = self.engine
        versions, extra, emergencies = self._extra_data()
        key = (
            str(caller.get("id", "")),
            str(caller.get("kind", "")),
            str(caller.get("department", "")),
            str(caller.get("region", "")),
            action,
            dataset,
            purpose,
            str(versions[0]),
            str(versions[1]),
            str(versions[2]),
            engine.version,
        )
        aware_now = now if now.tzinfo else now.replace(tzinfo=UTC)
        with self._lock:
            entry = self._cache.get(key)
            hit = entry is not None and (entry[1] is None or aware_now < entry[1])
            if hit:
                self._cache.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if self.metrics is not None:
            self.metrics.plan_cache(hit)
        if hit and entry is not None:
            return entry[0]
        plan, cacheable = self._evaluate(
            engine, caller, action, dataset, purpose, now, extra, emergencies
        )
        if plan.obligations.emergency_id and not plan.expires_at:
            # An emergency plan without an end would outlive its emergency in the cache.
            cacheable = False
        if cacheable:
            with self._lock:
                self._cache[key] = (plan, _expiry(plan))
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return plan

    def swap(self, engine: PolicyEngine, catalog: Catalog | None = None) -> PolicyEngine:
        """Serve `engine` (and `catalog`, its bundle's) from the next decision on;
        returns the engine it replaces.

        One reference store each, in one step on the requests' loop: a decision
        that already read the old engine finishes on it, every later one uses the
        new, and catalog readers switch at the same point. Plans of the old
        version are dropped (their keys could never hit again anyway).
        """
        if self.catalog is not None and catalog is None:
            catalog = engine_catalog(engine, self.catalog.pool_structure)  # raises: no swap
        with self._lock:
            old, self._engine = self._engine, engine
            if catalog is not None and self.catalog is not None:
                self.catalog.swap(catalog, engine.version)
            self._cache.clear()
        if self.metrics is not None:
            self.metrics.policy_served(engine.version)
        return old

    def policy_data(self) -> Mapping[str, Any]:
        """The data documents the engine evaluates against (the grants), for
        callers that evaluate an input of their own (the disclosure policy)."""
        return self._extra_data()[1]

    def invalidate(self) -> None:
        """Forget every cached plan and re-read the grants now (not at the next stat)."""
        self.grants.reload()
        if self.emergencies is not None:
            self.emergencies.reload()
        if self.suspensions is not None:
            self.suspensions.reload()
        with self._lock:
            self._cache.clear()

    def _extra_data(self) -> tuple[tuple[int, int, int], Mapping[str, Any], list[Any]]:
        data = self._data
        store = self.emergencies
        suspensions = self.suspensions
        versions = (
            self.grants.version,
            store.version if store is not None else 0,
            suspensions.version if suspensions is not None else 0,
        )
        if data is None or data[0] != versions:
            if store is not None and data is not None and data[0][0] != versions[0]:
                # Declaring and ending write both files: when the grants moved, look
                # at the emergencies now rather than at their next stat.
                store.reload()
            gv, grants = self.grants.snapshot()
            ev, active = store.policy_view() if store is not None else (0, [])
            sv, suspended = suspensions.policy_view() if suspensions is not None else (0, {})
            data = ((gv, ev, sv), {"grants": grants, "suspensions": suspended}, active)
            self._data = data
        return data

    def _evaluate(
        self,
        engine: PolicyEngine,
        caller: Mapping[str, str],
        action: str,
        dataset: str,
        purpose: str,
        now: datetime,
        extra: Mapping[str, Any],
        emergencies: list[Any] | None = None,
    ) -> tuple[Plan, bool]:
        version = engine.version
        doc: dict[str, Any] = {
            "caller": {k: str(v) for k, v in caller.items()},
            "action": action,
            "dataset": dataset,
            "purpose": purpose,
            "now": rfc3339(now),
        }
        if emergencies:
            doc["emergencies"] = emergencies
        try:
            result = engine.evaluate(doc, extra)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # regorus panics are BaseExceptions
            # The message goes to the caller: never echo the input or the engine's text.
            log.error("policy %s evaluation failed: %s", version, rego_error_text(e)[:500])
            return Plan.deny("POLICY_ERROR", "the policy could not be evaluated", version), False
        if result is None:
            return Plan.deny("POLICY_ERROR", "the policy gave no decision", version), False
        try:
            return Plan.from_policy(result, version), True
        except (KeyError, TypeError, ValueError, AttributeError):
            log.error("policy %s returned a malformed plan", version)
            return Plan.deny("POLICY_ERROR", "the policy returned a malformed plan", version), False


class _Pinned:
    """`Decider.pinned` as a plain context manager: every request enters one, and a
    class costs less than a generator-based @contextmanager."""

    __slots__ = ("_catalog_token", "_decider", "_engine_token")

    def __init__(self, decider: Decider) -> None:
        self._decider = decider

    def __enter__(self) -> None:
        d = self._decider
        self._engine_token = _PINNED_ENGINE.set((d, d._engine))
        self._catalog_token = d.catalog.pin() if d.catalog is not None else None

    def __exit__(self, *exc: object) -> None:
        if self._catalog_token is not None:
            ServedCatalog.unpin(self._catalog_token)
        _PINNED_ENGINE.reset(self._engine_token)
