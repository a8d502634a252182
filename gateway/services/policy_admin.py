"""PolicyAdminService: validate, test, preview, activate and roll back policy versions.

Every RPC is a row of the route table, run by the one pipeline (authenticate
-> decode -> parse -> decide -> limits -> handle -> audit) with an action of
its own (policy.validate, policy.test, policy.impact, policy.activate,
policy.rollback, policy.read) that the policy allows to the admin kind only.
The slow part of a call (a child process that checks, tests or replays the
untrusted bundle, building the new engine) is the handle's own step, so it
runs only for a caller the pipeline authenticated, allowed and admitted: the
handle awaits it in a worker thread, never blocking the event loop the other
calls run on, then commits the result (its write in a worker thread too, the swap
on the loop) or raises the error, which the pipeline audits. Slow parts run one
at a time per process.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from govgw.v1 import policy_admin_pb2 as pb

from contract.signing import is_sm2_signature
from gateway import validation
from gateway.call import Exec, Outcome, Request
from gateway.errors import FieldViolation, GovgwError
from gateway.pipeline import Parts
from gateway.policy.administration import PolicyAdministration, PolicyInvalid, Prepared
from gateway.policy.bundle import PolicyProblem, is_bundle_path
from gateway.policy.impact import EXAMPLES
from gateway.policy.versions import (
    HistoryEntry,
    Signature,
    VersionError,
    VersionInfo,
    is_version_id,
)
from gateway.routes import Incoming, Route, rows_of
from gateway.services.policy_messages import (
    history_message,
    impact_message,
    problem_message,
    suite_message,
    version_message,
)

T = TypeVar("T")

PURPOSE = validation.purpose("策略管理")  # recorded as the purpose of calls that carry no reason
MAX_FILES = 500
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_EXAMPLES = 20
MAX_WINDOW = timedelta(days=366)
DEFAULT_WINDOW = timedelta(hours=24)

# How a refused version operation reads to the caller.
_VERSION_CODES: dict[str, grpc.StatusCode] = {
    "VERSION_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "VERSION_INVALID": grpc.StatusCode.INVALID_ARGUMENT,
    "SIGNATURE_INVALID": grpc.StatusCode.INVALID_ARGUMENT,
    "SIGNATURE_KEY_UNTRUSTED": grpc.StatusCode.PERMISSION_DENIED,
}


def version_error(e: VersionError, field: str = "") -> GovgwError:
    code = _VERSION_CODES.get(e.reason, grpc.StatusCode.FAILED_PRECONDITION)
    violations = [FieldViolation(field, e.message, e.reason)] if field else []
    return GovgwError(code, e.reason, e.message, violations=violations)


def policy_invalid(problems: Sequence[PolicyProblem], paths: Sequence[str]) -> GovgwError:
    """FAILED_PRECONDITION POLICY_INVALID, one violation per problem, naming the file."""
    index = {p: i for i, p in enumerate(paths)}
    violations = [
        FieldViolation(
            f"bundle.files[{index[p.file]}]" if p.file in index else "bundle",
            str(p),
            f"POLICY_{p.kind.upper()}",
        )
        for p in problems
    ]
    first = problems[0] if problems else None
    return GovgwError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "POLICY_INVALID",
        f"the bundle has {len(problems)} problem(s); first: {first}",
        violations=violations,
    )


def bundle_files(bundle: pb.PolicyBundle, field: str = "bundle") -> dict[str, bytes]:
    """The uploaded files by path, or INVALID_ARGUMENT naming each bad one."""
    v = validation.Violations()
    files: dict[str, bytes] = {}
    if not bundle.files:
        v.add(f"{field}.files", "a bundle needs its .rego and data/*.json files", "BUNDLE_EMPTY")
    if len(bundle.files) > MAX_FILES:
        v.add(f"{field}.files", f"at most {MAX_FILES} files", "BUNDLE_TOO_LARGE")
    total = 0
    for i, f in enumerate(bundle.files):
        at = f"{field}.files[{i}]"
        total += len(f.content)
        if not is_bundle_path(f.path):
            v.add(
                f"{at}.path",
                "must be a relative path to a .rego module or data/<name>.json",
                "POLICY_PATH_INVALID",
            )
        elif f.path in files:
            v.add(f"{at}.path", "appears twice", "POLICY_PATH_DUPLICATE")
        elif len(f.content) > MAX_FILE_BYTES:
            v.add(f"{at}.content", f"larger than {MAX_FILE_BYTES} bytes", "POLICY_FILE_TOO_LARGE")
        else:
            files[f.path] = f.content
    if total > MAX_BUNDLE_BYTES:
        v.add(f"{field}.files", f"larger than {MAX_BUNDLE_BYTES} bytes", "BUNDLE_TOO_LARGE")
    v.raise_if_any()
    return files


def _reason(text: str) -> str:
    """A reason is recorded (version manifest, history, audit purpose): desensitized."""
    return validation.recorded_text(text, "reason", "say why")


def _signature(request: Any) -> Signature | None:
    if not request.HasField("signature"):
        return None
    sig = request.signature
    v = validation.Violations()
    if not sig.key_id:
        v.add("signature.key_id", "is required with a signature", "SIGNATURE_KEY_MISSING")
    # Only the form here; whether it verifies is the trust store's check (SIGNATURE_INVALID).
    if len(sig.signature) != 64 and not is_sm2_signature(sig.signature):
        v.add(
            "signature.signature",
            "an Ed25519 signature is 64 bytes; an SM2 one is the DER SEQUENCE of r and s",
            "SIGNATURE_MALFORMED",
        )
    v.raise_if_any()
    return Signature(sig.key_id, base64.b64encode(sig.signature).decode())


# Validate: the uploaded files by path.
Files = dict[str, bytes]


@dataclass(frozen=True)
class TestArgs:
    files: Files
    min_coverage: float


@dataclass(frozen=True)
class ImpactArgs:
    files: Files
    window: timedelta
    examples: int
    paths: tuple[str, ...]  # the uploaded paths in order, to name a problem's file


@dataclass(frozen=True)
class ActivateArgs:
    source: str  # "bundle" or "version"
    files: Files | None
    version: str
    signature: Signature | None
    reason: str  # desensitized: it is the version's recorded reason (its manifest)
    paths: tuple[str, ...]


class PolicyAdminService:
    def __init__(self, parts: Parts, admin: PolicyAdministration) -> None:
        self.parts = parts
        self.admin = admin
        # Slow parts run one at a time per process.
        self._slow = asyncio.Semaphore(1)

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(pb.DESCRIPTOR, "PolicyAdminService")
        return [
            row("Validate", "policy.validate", self.parse_validate, self.validate),
            row("Test", "policy.test", self.parse_test, self.test),
            row("Impact", "policy.impact", self.parse_impact, self.impact),
            # Activate and Rollback change state: the pipeline honours an idempotency key
            # for them (a retried call returns the first answer and switches nothing again).
            row(
                "Activate",
                "policy.activate",
                self.parse_activate,
                self.activate,
                state_changing=True,
            ),
            row(
                "Rollback",
                "policy.rollback",
                self.parse_rollback,
                self.rollback,
                state_changing=True,
            ),
            # Reads the store (files, or the database): off the event loop.
            row(
                "ListVersions",
                "policy.read",
                self.parse_list_versions,
                self.list_versions,
                in_thread=True,
            ),
        ]

    async def _slow_part(self, work: Callable[[], T]) -> T:
        """Run `work` (a child process that checks, tests or replays the untrusted bundle,
        building the new engine) in a worker thread, one at a time per process. The
        pipeline calls the handle only after authentication, decision and admission, so
        nothing slow runs for a caller it refuses; errors map as the RPC's own."""
        async with self._slow:
            try:
                return await asyncio.to_thread(work)
            except PolicyInvalid as e:
                raise policy_invalid(e.problems, []) from None
            except VersionError as e:
                raise version_error(e) from None

    # -- Validate --
    def parse_validate(self, request: pb.ValidateRequest, _in: Incoming) -> Request[Files]:
        return Request(PURPOSE, ("",), payload=bundle_files(request.bundle))

    async def validate(self, ex: Exec[Files]) -> Outcome[pb.ValidateResponse]:
        files = ex.request.payload
        version, problems = await self._slow_part(lambda: self.admin.validate(files))
        return Outcome(
            pb.ValidateResponse(
                version=version,
                valid=not problems,
                problems=[problem_message(p) for p in problems],
            )
        )

    # -- Test --
    def parse_test(self, request: pb.TestRequest, _in: Incoming) -> Request[TestArgs]:
        v = validation.Violations()
        files = v.check(bundle_files, request.bundle)
        if not 0 <= request.min_coverage <= 100:
            v.add("min_coverage", "must be 0 to 100", "MIN_COVERAGE_INVALID")
        v.raise_if_any()
        assert files is not None
        return Request(PURPOSE, ("",), payload=TestArgs(files, request.min_coverage))

    async def test(self, ex: Exec[TestArgs]) -> Outcome[pb.TestResponse]:
        args = ex.request.payload
        done = await self._slow_part(lambda: self.admin.test(args.files))
        return Outcome(suite_message(*done, args.min_coverage))

    # -- Impact --
    def parse_impact(self, request: pb.ImpactRequest, _in: Incoming) -> Request[ImpactArgs]:
        v = validation.Violations()
        files = v.check(lambda b: bundle_files(b, "candidate"), request.candidate)
        # In range for a timedelta: the pipeline's decode refused a Duration beyond
        # +-10,000 years (DURATION_OUT_OF_RANGE) before this runs.
        window = request.window.ToTimedelta() if request.HasField("window") else DEFAULT_WINDOW
        if not timedelta(0) < window <= MAX_WINDOW:
            v.add(
                "window",
                f"must be positive and at most {MAX_WINDOW.days} days",
                "WINDOW_INVALID",
            )
        if not 0 <= request.max_examples <= MAX_EXAMPLES:
            v.add("max_examples", f"must be 0 to {MAX_EXAMPLES}", "MAX_EXAMPLES_INVALID")
        v.raise_if_any()
        assert files is not None
        paths = tuple(f.path for f in request.candidate.files)
        args = ImpactArgs(files, window, request.max_examples or EXAMPLES, paths)
        return Request(PURPOSE, ("",), payload=args)

    async def impact(self, ex: Exec[ImpactArgs]) -> Outcome[pb.ImpactResponse]:
        args = ex.request.payload
        since = datetime.now(UTC) - args.window

        def work() -> dict[str, Any]:
            try:
                return self.admin.impact(args.files, since, args.examples)
            except PolicyInvalid as e:
                raise policy_invalid(e.problems, args.paths) from None

        report = await self._slow_part(work)
        return Outcome(impact_message(report, since))

    # -- Activate --
    def parse_activate(self, request: pb.ActivateRequest, _in: Incoming) -> Request[ActivateArgs]:
        source = request.WhichOneof("source") or ""
        v = validation.Violations()
        files = None
        if source == "bundle":
            files = v.check(bundle_files, request.bundle)
        elif source == "version":
            if not is_version_id(request.version):
                v.add("version", "a version looks like pv-<12 hex digits>", "VERSION_INVALID")
        else:
            v.add("bundle", "give a bundle or a stored version", "POLICY_SOURCE_MISSING")
        reason = v.check(_reason, request.reason)
        signature = v.check(_signature, request)
        v.raise_if_any()
        args = ActivateArgs(
            source,
            files,
            request.version,
            signature,
            reason or "",
            tuple(f.path for f in request.bundle.files),
        )
        return Request(reason or "", ("",), payload=args)

    async def activate(self, ex: Exec[ActivateArgs]) -> Outcome[pb.ActivateResponse]:
        args = ex.request.payload

        def work() -> Prepared:
            try:
                return self.admin.prepare_activation(
                    files=args.files,
                    version=args.version,
                    signature=args.signature,
                    author=ex.caller.id,
                    reason=args.reason,
                )
            except PolicyInvalid as e:
                raise policy_invalid(e.problems, args.paths) from None
            except VersionError as e:
                field = {
                    "SIGNATURE_REQUIRED": "signature",
                    "SIGNATURE_INVALID": "signature.signature",
                    "SIGNATURE_KEY_UNTRUSTED": "signature.key_id",
                    "VERSION_NOT_FOUND": "version",
                    "VERSION_ALREADY_ACTIVE": "version" if args.source == "version" else "bundle",
                }.get(e.reason, "")
                raise version_error(e, field) from None

        prepared = await self._slow_part(work)
        info, entry, serving = await self._commit(ex, prepared)
        return Outcome(
            pb.ActivateResponse(
                version=version_message(info, entry.version),
                entry=history_message(entry),
                serving_version=serving,
            )
        )

    # -- Rollback --
    def parse_rollback(self, request: pb.RollbackRequest, _in: Incoming) -> Request[str]:
        v = validation.Violations()
        if request.version and not is_version_id(request.version):
            v.add("version", "a version looks like pv-<12 hex digits>", "VERSION_INVALID")
        reason = v.check(_reason, request.reason)
        v.raise_if_any()
        return Request(reason or "", ("",), payload=request.version)

    async def rollback(self, ex: Exec[str]) -> Outcome[pb.RollbackResponse]:
        version = ex.request.payload

        def work() -> Prepared:
            try:
                return self.admin.prepare_rollback(version)
            except PolicyInvalid as e:
                raise policy_invalid(e.problems, []) from None
            except VersionError as e:
                raise version_error(e, "version" if version else "") from None

        prepared = await self._slow_part(work)
        info, entry, serving = await self._commit(ex, prepared)
        return Outcome(
            pb.RollbackResponse(
                version=version_message(info, entry.version),
                entry=history_message(entry),
                serving_version=serving,
            )
        )

    async def _commit(
        self, ex: Exec[Any], prepared: Prepared
    ) -> tuple[VersionInfo, HistoryEntry, str]:
        """Make the prepared version active, after the slow part: fast, but its write
        (a file's fsync, or a database transaction) runs in a worker thread; the engine
        is swapped on the loop (PolicyRuntime.adopt hands it over)."""
        try:
            return await asyncio.to_thread(
                self.admin.commit,
                prepared,
                actor=ex.caller.id,
                reason=ex.request.purpose,
                request_id=ex.request_id,
            )
        except VersionError as e:
            raise version_error(e) from None

    # -- ListVersions --
    def parse_list_versions(self, _request: pb.ListVersionsRequest, _in: Incoming) -> Request[None]:
        return Request(PURPOSE, ("",))

    def list_versions(self, _ex: Exec[None]) -> Outcome[pb.ListVersionsResponse]:
        doc = self.admin.listing()
        return Outcome(
            pb.ListVersionsResponse(
                versions=[version_message(i, doc["active"]) for i in doc["versions"]],
                history=[history_message(h) for h in doc["history"]],
                active_version=doc["active"],
                serving_version=doc["serving"],
                load_error=doc["load_error"],
                signatures_required=doc["signatures_required"],
                backend=doc["backend"],
            )
        )


__all__ = ["PolicyAdminService", "bundle_files"]
