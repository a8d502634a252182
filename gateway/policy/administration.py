"""Policy administration behind PolicyAdminService: validate, test, impact, activate, roll back.

Kept apart from the gRPC service so the service only converts messages and
runs the pipeline. The work splits in two:

- `prepare_*`, `validate`, `test`, `impact`: everything slow (a child process
  checks or replays the untrusted bundle, a new engine is built). It has no
  effect but storing a content-addressed version, and the service runs it
  in a worker thread so the event loop keeps serving.
- `commit`: the switch itself, milliseconds, run by the pipeline's execute
  step on the event loop: record the history entry, replace the pointer,
  adopt the prepared engine in this process. Other processes follow within
  a poll interval (on PostgreSQL: once the change is announced).

The impact replay runs in a child process; it gets the grants, emergencies and
callers' regions as this process's stores hold them (on PostgreSQL: the shared
ones), written to a private temporary directory, never by reading the data
directory's files behind the stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from gateway.callers import CallerRegistry
from gateway.catalog import Catalog, CatalogMismatch, from_bundle_data
from gateway.policy.bundle import BundleError, PolicyBundle, PolicyProblem, bundle_from_files
from gateway.policy.check import RegoSuite, check_in_subprocess, run_child, suite_in_subprocess
from gateway.policy.engine import PolicyEngine
from gateway.policy.runtime import EngineFactory, PolicyRuntime
from gateway.policy.schema import CATALOG
from gateway.policy.versions import (
    BASELINE_AUTHOR,
    HistoryEntry,
    Signature,
    VersionError,
    VersionInfo,
    VersionStore,
    materialized,
)

CHECK_TIMEOUT_S = 30.0
IMPACT_TIMEOUT_S = 120.0
BASELINE_REASON = "the policy served before the first activation"


class PolicyInvalid(Exception):
    """The bundle failed its checks or tests; `problems` say where."""

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in problems[:5]))


@dataclass(frozen=True)
class Prepared:
    """A version checked, trusted and built, ready to be made active."""

    info: VersionInfo
    engine: PolicyEngine
    action: str  # activate | rollback
    catalog: Catalog | None = None  # the version's catalog, served with its engine


def structure_problems(
    candidate: Mapping[str, Any], served: Mapping[str, Sequence[str]]
) -> list[PolicyProblem]:
    """A version may change classes, treatments and rules, not what the pool holds.

    The pool and the catalog RPCs are built for the served catalog's datasets
    and fields; a policy naming others would decide about data that is not there.
    """
    where = f"data/{CATALOG}.json"
    datasets = candidate.get("datasets") if isinstance(candidate, Mapping) else None
    if not isinstance(datasets, Mapping):
        return []  # the schema check reports that
    out = []
    for name in sorted(served.keys() - datasets.keys()):
        out.append(PolicyProblem("data", f"dataset {name} is missing; the pool holds it", where))
    for name in sorted(datasets.keys() - served.keys()):
        out.append(PolicyProblem("data", f"dataset {name} is not in the pool", where))
    for name in sorted(served.keys() & datasets.keys()):
        fields = {f.get("name") for f in datasets[name].get("fields", []) if isinstance(f, dict)}
        for f in sorted(set(served[name]) ^ fields, key=str):
            out.append(
                PolicyProblem(
                    "data",
                    f"field {f} of {name} differs from the pool's fields: changing what the pool"
                    " holds needs a gateway release, not a policy version",
                    where,
                )
            )
    return out


class ListStore(Protocol):
    """A store of JSON items (GrantStore, EmergencyStore), on whichever backend."""

    def list(self) -> list[dict[str, Any]]: ...


class PolicyAdministration:
    def __init__(
        self,
        store: VersionStore,
        runtime: PolicyRuntime,
        build: EngineFactory,
        *,
        served_catalog: Mapping[str, Sequence[str]],
        audit_files: Callable[[], list[Path]],
        grants: ListStore,
        callers: CallerRegistry,
        backend: str = "regorus",
        emergencies: ListStore | None = None,
        audit_index: Path | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.build = build
        self.served_catalog = served_catalog
        self.audit_files = audit_files
        self.audit_index = audit_index  # the replay reads its window through it
        self.grants = grants
        self.callers = callers
        self.backend = backend
        self.emergencies = emergencies

    # -- checks --
    def _bundle(self, files: Mapping[str, bytes]) -> PolicyBundle:
        try:
            return bundle_from_files(files, include_tests=True)
        except BundleError as e:
            raise PolicyInvalid(e.problems) from None

    def validate(self, files: Mapping[str, bytes]) -> tuple[str, list[PolicyProblem]]:
        """(version, problems): compile, builtins, data schema, plan sanity, pool structure."""
        try:
            bundle = self._bundle(files)
        except PolicyInvalid as e:
            return "", e.problems
        with materialized(files) as d:
            problems = check_in_subprocess(d, CHECK_TIMEOUT_S, run_tests=False)
        problems += structure_problems(bundle.data.get(CATALOG, {}), self.served_catalog)
        return bundle.version, problems

    def test(self, files: Mapping[str, bytes]) -> tuple[str, list[PolicyProblem], RegoSuite | None]:
        try:
            bundle = self._bundle(files)
        except PolicyInvalid as e:
            return "", e.problems, None
        with materialized(files) as d:
            problems, suite = suite_in_subprocess(d, CHECK_TIMEOUT_S)
        return bundle.version, problems, suite

    def impact(self, files: Mapping[str, bytes], since: datetime, examples: int) -> dict[str, Any]:
        """The replay report (gateway.policy.impact) of the candidate against what is served."""
        self._bundle(files)
        serving = self.runtime.decider.serving
        current_files = getattr(getattr(serving, "bundle", None), "files", None)
        if not current_files:
            raise VersionError("SERVING_UNKNOWN", "the served policy's files are not known")
        with (
            materialized(files) as cand,
            materialized(current_files) as cur,
            materialized(self._stores()) as stores,
        ):
            args = ["--current", str(cur), "--candidate", str(cand)]
            for path in self.audit_files():
                args += ["--audit", str(path)]
            if self.audit_index is not None:
                args += ["--audit-index", str(self.audit_index)]
            args += [
                "--grants",
                str(stores / "grants.json"),
                "--emergencies",
                str(stores / "emergencies.json"),
                "--regions",
                str(stores / "regions.json"),
                "--since",
                since.isoformat(),
                "--examples",
                str(examples),
            ]
            doc, problems = run_child("gateway.policy.impact", args, IMPACT_TIMEOUT_S)
        if doc is None:
            raise PolicyInvalid(problems)
        if doc.get("problems"):
            raise PolicyInvalid([PolicyProblem.from_json(p) for p in doc["problems"]])
        return dict(doc["report"])

    def _stores(self) -> dict[str, bytes]:
        """What the replay needs of the stores, read through them (a worker thread)."""
        emergencies = self.emergencies.list() if self.emergencies is not None else []
        regions = {c.id: c.region for c in self.callers.list()}
        return {
            "grants.json": _json({"grants": self.grants.list()}),
            "emergencies.json": _json({"emergencies": emergencies}),
            "regions.json": _json(regions),
        }

    # -- activation --
    def prepare_activation(
        self,
        *,
        files: Mapping[str, bytes] | None,
        version: str,
        signature: Signature | None,
        author: str,
        reason: str,
    ) -> Prepared:
        """Check, store (content-addressed) and build a version; no switch yet."""
        if files is not None:
            bundle = self._bundle(files)
            self.runtime.expect(bundle.version)  # checked here: the watcher need not
            stored = False
            if self.store.shared:
                # Stored (once trusted) before the checks: every other node checks it in
                # a child too, before serving it, and starts now, so it is ready about
                # when this check ends. One that fails here stays stored, never active.
                self._trusted(signature, bundle.version, files)
                self._create(bundle, author, reason, signature)
                stored = True
            problems = self._checked(files, bundle)
            if problems:
                raise PolicyInvalid(problems)
            if not stored:
                self._trusted(signature, bundle.version, files)
            info = self._create(bundle, author, reason, signature)
        else:
            info, stored = self.store.read_files(version)
            if signature is not None and info.signature is None:
                self._trusted(signature, version, stored)
                info = self.store.create(
                    bundle_from_files(stored, include_tests=True),
                    author=author,
                    reason=reason,
                    signature=signature,
                )
            problems = self._checked(stored, bundle_from_files(stored, include_tests=True))
            if problems:
                raise PolicyInvalid(problems)
        if info.version == self.store.active_version():
            raise VersionError("VERSION_ALREADY_ACTIVE", f"{info.version} is already active")
        return self._built(info.version, "activate")

    def _create(
        self, bundle: PolicyBundle, author: str, reason: str, signature: Signature | None
    ) -> VersionInfo:
        return self.store.create(
            bundle,
            author=author,
            reason=reason,
            parent=self.store.active_version(),
            signature=signature,
        )

    def prepare_rollback(self, version: str) -> Prepared:
        target = self.store.rollback_target(version)
        _, stored = self.store.read_files(target)
        problems = self._checked(stored, bundle_from_files(stored, include_tests=True))
        if problems:
            raise PolicyInvalid(problems)
        return self._built(target, "rollback")

    def _checked(self, files: Mapping[str, bytes], bundle: PolicyBundle) -> list[PolicyProblem]:
        # Every activation re-checks, tests included: the checks may have grown
        # since a version was stored, and a rollback target is no exception.
        with materialized(files) as d:
            problems = check_in_subprocess(d, CHECK_TIMEOUT_S)
        return problems + structure_problems(bundle.data.get(CATALOG, {}), self.served_catalog)

    def _trusted(
        self, signature: Signature | None, version: str, files: Mapping[str, bytes]
    ) -> None:
        problem = self.store.trust().check(signature, version, files)
        if problem:
            raise VersionError(*problem)

    def _built(self, version: str, action: str) -> Prepared:
        info, bundle = self.store.load(version)  # integrity and trust, as the watchers will
        structure = {n: tuple(f) for n, f in self.served_catalog.items()}
        try:
            catalog = from_bundle_data(bundle.data, structure)
        except CatalogMismatch as e:
            raise PolicyInvalid([PolicyProblem("data", str(e), f"data/{CATALOG}.json")]) from None
        return Prepared(info, self.build(bundle), action, catalog)

    def commit(
        self, prepared: Prepared, *, actor: str, reason: str, request_id: str
    ) -> tuple[VersionInfo, HistoryEntry, str]:
        """Make the prepared version active; fast, so it runs on the event loop."""
        if not self.store.active_version():
            self._register_baseline()
        entry = self.store.set_active(
            prepared.info.version,
            actor=actor,
            action=prepared.action,
            reason=reason,
            request_id=request_id,
        )
        serving = self.runtime.adopt(entry.seq, prepared.engine, prepared.catalog)
        return prepared.info, entry, serving

    def _register_baseline(self) -> None:
        # What was served before the first activation becomes a version too, so
        # the first activation can be rolled back like any other.
        bundle = getattr(self.runtime.decider.serving, "bundle", None)
        if bundle is None or not bundle.files:
            return
        info = self.store.create(bundle, author=BASELINE_AUTHOR, reason=BASELINE_REASON)
        self.store.set_active(
            info.version, actor=BASELINE_AUTHOR, action="baseline", reason=BASELINE_REASON
        )

    # -- reading --
    def listing(self) -> dict[str, Any]:
        status = self.runtime.status()
        return {
            "versions": self.store.list(),
            "history": self.store.history(),
            "active": status.active,
            "serving": status.serving,
            "load_error": status.last_error,
            "signatures_required": self.store.trust().require_signature,
            "backend": self.backend,
        }


def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()
