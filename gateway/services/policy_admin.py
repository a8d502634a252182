"""PolicyAdminService: validate, test, preview, activate and roll back policy versions.

Every call runs through the pipeline (authenticate -> limits -> decide ->
execute -> audit) with an action of its own (policy.validate, policy.test,
policy.impact, policy.activate, policy.rollback, policy.read) that the policy
allows to the admin kind only. The slow part of a call (a child process that
checks, tests or replays the untrusted bundle, building the new engine) must
not block the event loop the other calls run on, and the pipeline's execute
step is synchronous; so the handler first checks, without side effects, that
the caller would be allowed, runs the slow part in a worker thread, then runs
the pipeline whose execute step only commits the result (or raises the
error, so that it is audited). Slow parts run one at a time per process.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from govgw.v1 import policy_admin_pb2 as pb
from govgw.v1 import policy_admin_pb2_grpc

from gateway import validation
from gateway.errors import FieldViolation, GovgwError, invalid
from gateway.pipeline import Exec, Outcome, Pipeline, Request
from gateway.policy.administration import PolicyAdministration, PolicyInvalid, Prepared
from gateway.policy.bundle import PolicyProblem, is_bundle_path
from gateway.policy.check import RegoSuite
from gateway.policy.impact import EXAMPLES
from gateway.policy.versions import (
    HistoryEntry,
    Signature,
    VersionError,
    VersionInfo,
    is_version_id,
)
from gateway.services.common import timestamp

T = TypeVar("T")
log = logging.getLogger("govgw.policy")

PURPOSE = "策略管理"  # recorded as the purpose of calls that carry no reason
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
    """A reason is recorded (history, audit purpose): the purpose rules apply to it."""
    try:
        return validation.purpose(text)
    except GovgwError as e:
        v = e.violations[0]
        description = v.description.replace("say why the data is needed", "say why")
        raise invalid("reason", description, v.reason.replace("PURPOSE", "REASON")) from None


def _signature(request: Any) -> Signature | None:
    if not request.HasField("signature"):
        return None
    sig = request.signature
    v = validation.Violations()
    if not sig.key_id:
        v.add("signature.key_id", "is required with a signature", "SIGNATURE_KEY_MISSING")
    if len(sig.signature) != 64:
        v.add("signature.signature", "an Ed25519 signature is 64 bytes", "SIGNATURE_MALFORMED")
    v.raise_if_any()
    return Signature(sig.key_id, base64.b64encode(sig.signature).decode())


def version_message(info: VersionInfo, active: str) -> pb.PolicyVersion:
    return pb.PolicyVersion(
        version=info.version,
        digest=info.digest,
        author=info.author,
        created_at=timestamp(info.created_at),
        reason=info.reason,
        parent=info.parent,
        signed_by=info.signature.key_id if info.signature else "",
        files=sorted(info.files),
        active=info.version == active,
    )


def history_message(h: HistoryEntry) -> pb.HistoryEntry:
    return pb.HistoryEntry(
        seq=h.seq,
        at=timestamp(h.at),
        actor=h.actor,
        action=h.action,
        version=h.version,
        previous=h.previous,
        reason=h.reason,
        request_id=h.request_id,
    )


def problem_message(p: PolicyProblem) -> pb.PolicyProblem:
    return pb.PolicyProblem(kind=p.kind, message=p.message, file=p.file, line=p.line, rule=p.rule)


def _plan_summary(doc: Mapping[str, Any]) -> pb.PlanSummary:
    return pb.PlanSummary(
        allow=bool(doc.get("allow")),
        reason=str(doc.get("reason", "")),
        fields=dict(doc.get("fields", {})),
        predicates=list(doc.get("predicates", [])),
        region_prefix=str(doc.get("region_prefix", "")),
    )


def impact_message(r: Mapping[str, Any], since: datetime) -> pb.ImpactResponse:
    return pb.ImpactResponse(
        current_version=r["current_version"],
        candidate_version=r["candidate_version"],
        since=timestamp(since),
        records_read=r["records_read"],
        requests_replayed=r["requests_replayed"],
        decisions_compared=r["decisions_compared"],
        decisions_changed=r["decisions_changed"],
        skipped=r["skipped"],
        recorded_differs=r["recorded_differs"],
        totals=r["totals"],
        groups=[
            pb.ImpactGroup(
                dataset=g["dataset"],
                caller=g["caller"],
                caller_kind=g["caller_kind"],
                change=g["change"],
                count=g["count"],
                names=g["names"],
                examples=[
                    pb.ImpactExample(
                        request_id=x["request_id"],
                        time=timestamp(x["ts"]),
                        action=x["action"],
                        purpose=x["purpose"],
                        requested_fields=x["requested_fields"],
                        before=_plan_summary(x["before"]),
                        after=_plan_summary(x["after"]),
                    )
                    for x in g["examples"]
                ],
            )
            for g in r["groups"]
        ],
    )


def suite_message(
    version: str, problems: Sequence[PolicyProblem], suite: RegoSuite | None, min_coverage: float
) -> pb.TestResponse:
    if suite is None:
        return pb.TestResponse(
            version=version, passed=False, problems=[problem_message(p) for p in problems]
        )
    return pb.TestResponse(
        version=version,
        passed=suite.passed and not problems and suite.coverage_percent >= min_coverage,
        results=[
            pb.RegoTestResult(name=r.name, passed=r.passed, message=r.message)
            for r in suite.results
        ],
        coverage_percent=round(suite.coverage_percent, 2),
        files=[
            pb.FileCoverage(
                file=f, percent=round(suite.file_coverage(f), 2), not_covered_lines=missed
            )
            for f, (_, missed) in sorted(suite.coverage.items())
        ],
        problems=[problem_message(p) for p in problems],
    )


class PolicyAdminService(policy_admin_pb2_grpc.PolicyAdminServiceServicer):
    def __init__(self, pipeline: Pipeline, admin: PolicyAdministration) -> None:
        self.pipeline = pipeline
        self.parts = pipeline.parts
        self.admin = admin
        self._slow = asyncio.Semaphore(1)

    # -- the two halves of a call --
    def _would_allow(self, context: grpc.aio.ServicerContext, action: str) -> str | None:
        """The caller id if the pipeline would let this caller do `action` now (no effects)."""
        try:
            caller = self.parts.auth.authenticate(context)
        except GovgwError:
            return None
        plan = self.parts.decider.decide(
            caller=caller.policy_input(),
            action=action,
            dataset="",
            purpose=PURPOSE,
            now=self.parts.clock(),
        )
        return caller.id if plan.allow else None

    async def _slow_part(
        self, context: grpc.aio.ServicerContext, action: str, work: Callable[[str], T]
    ) -> T | GovgwError | None:
        """Run `work(caller_id)` in a worker thread if the caller may; its error is kept."""
        caller_id = self._would_allow(context, action)
        if caller_id is None:
            return None  # the pipeline will refuse and audit the refusal
        async with self._slow:
            try:
                return await asyncio.to_thread(work, caller_id)
            except GovgwError as e:
                return e
            except PolicyInvalid as e:
                return policy_invalid(e.problems, [])
            except VersionError as e:
                return version_error(e)
            except Exception as e:  # a defect: audited as INTERNAL, its text never echoed
                log.error("%s: unexpected %s", action, type(e).__name__)
                return GovgwError(grpc.StatusCode.INTERNAL, "INTERNAL_ERROR", "internal error")

    @staticmethod
    def _result(done: T | GovgwError | None) -> T:
        if isinstance(done, GovgwError):
            raise done
        if done is None:
            # Allowed now but not a moment ago (a policy or caller change in between).
            raise GovgwError(
                grpc.StatusCode.ABORTED, "POLICY_CHANGED", "the decision changed; call again"
            )
        return done

    async def _run(
        self,
        context: grpc.aio.ServicerContext,
        action: str,
        parse: Callable[[], Request],
        work: Callable[[str], T],
        respond: Callable[[Exec, T], Any],
        *,
        replay: tuple[Callable[[bytes], Any], bytes] | None = None,
    ) -> Any:
        # Parse first, in the pipeline's terms: bad input is refused (and audited)
        # before anything slow runs.
        try:
            request = parse()
        except GovgwError:
            return await self.pipeline.run(context, action, parse, _unreachable)
        done = await self._slow_part(context, action, work)

        def execute(ex: Exec) -> Outcome[Any]:
            return Outcome(respond(ex, self._result(done)))

        # Activate and Rollback change state: the pipeline honours an idempotency key
        # for them (a retried call returns the first answer and switches nothing again).
        kw = {"replay_as": replay[0], "request_bytes": replay[1]} if replay else {}
        return await self.pipeline.run(context, action, lambda: request, execute, **kw)

    # -- RPCs --
    async def Validate(self, request: pb.ValidateRequest, context):
        def parse() -> Request:
            return Request(PURPOSE, ("",), payload=bundle_files(request.bundle))

        def work(_caller: str) -> tuple[str, list[PolicyProblem]]:
            return self.admin.validate(parse().payload)

        def respond(_ex: Exec, done: tuple[str, list[PolicyProblem]]) -> pb.ValidateResponse:
            version, problems = done
            return pb.ValidateResponse(
                version=version,
                valid=not problems,
                problems=[problem_message(p) for p in problems],
            )

        return await self._run(context, "policy.validate", parse, work, respond)

    async def Test(self, request: pb.TestRequest, context):
        def parse() -> Request:
            v = validation.Violations()
            files = v.check(bundle_files, request.bundle)
            if not 0 <= request.min_coverage <= 100:
                v.add("min_coverage", "must be 0 to 100", "MIN_COVERAGE_INVALID")
            v.raise_if_any()
            return Request(PURPOSE, ("",), payload=files)

        def work(_caller: str) -> tuple[str, list[PolicyProblem], RegoSuite | None]:
            return self.admin.test(parse().payload)

        def respond(_ex: Exec, done: tuple[str, list[PolicyProblem], RegoSuite | None]):
            return suite_message(*done, request.min_coverage)

        return await self._run(context, "policy.test", parse, work, respond)

    async def Impact(self, request: pb.ImpactRequest, context):
        now = datetime.now(UTC)

        def parse() -> Request:
            v = validation.Violations()
            files = v.check(lambda b: bundle_files(b, "candidate"), request.candidate)
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
            return Request(PURPOSE, ("",), payload=(files, now - window))

        def work(_caller: str) -> dict[str, Any]:
            files, since = parse().payload
            try:
                return self.admin.impact(files, since, request.max_examples or EXAMPLES)
            except PolicyInvalid as e:
                raise policy_invalid(
                    e.problems, [f.path for f in request.candidate.files]
                ) from None

        def respond(ex: Exec, report: dict[str, Any]) -> pb.ImpactResponse:
            return impact_message(report, ex.request.payload[1])

        return await self._run(context, "policy.impact", parse, work, respond)

    async def Activate(self, request: pb.ActivateRequest, context):
        source = request.WhichOneof("source")

        def parse() -> Request:
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
            return Request(reason or "", ("",), payload=(files, signature))

        def work(caller: str) -> Prepared:
            files, signature = parse().payload
            paths = [f.path for f in request.bundle.files]
            try:
                return self.admin.prepare_activation(
                    files=files,
                    version=request.version,
                    signature=signature,
                    author=caller,
                    reason=request.reason,
                )
            except PolicyInvalid as e:
                raise policy_invalid(e.problems, paths) from None
            except VersionError as e:
                field = {
                    "SIGNATURE_REQUIRED": "signature",
                    "SIGNATURE_INVALID": "signature.signature",
                    "SIGNATURE_KEY_UNTRUSTED": "signature.key_id",
                    "VERSION_NOT_FOUND": "version",
                    "VERSION_ALREADY_ACTIVE": "version" if source == "version" else "bundle",
                }.get(e.reason, "")
                raise version_error(e, field) from None

        def respond(ex: Exec, prepared: Prepared) -> pb.ActivateResponse:
            info, entry, serving = self._commit(ex, prepared)
            return pb.ActivateResponse(
                version=version_message(info, entry.version),
                entry=history_message(entry),
                serving_version=serving,
            )

        return await self._run(
            context,
            "policy.activate",
            parse,
            work,
            respond,
            replay=(pb.ActivateResponse.FromString, request.SerializeToString()),
        )

    async def Rollback(self, request: pb.RollbackRequest, context):
        def parse() -> Request:
            v = validation.Violations()
            if request.version and not is_version_id(request.version):
                v.add("version", "a version looks like pv-<12 hex digits>", "VERSION_INVALID")
            reason = v.check(_reason, request.reason)
            v.raise_if_any()
            return Request(reason or "", ("",))

        def work(_caller: str) -> Prepared:
            try:
                return self.admin.prepare_rollback(request.version)
            except PolicyInvalid as e:
                raise policy_invalid(e.problems, []) from None
            except VersionError as e:
                raise version_error(e, "version" if request.version else "") from None

        def respond(ex: Exec, prepared: Prepared) -> pb.RollbackResponse:
            info, entry, serving = self._commit(ex, prepared)
            return pb.RollbackResponse(
                version=version_message(info, entry.version),
                entry=history_message(entry),
                serving_version=serving,
            )

        return await self._run(
            context,
            "policy.rollback",
            parse,
            work,
            respond,
            replay=(pb.RollbackResponse.FromString, request.SerializeToString()),
        )

    def _commit(self, ex: Exec, prepared: Prepared) -> tuple[VersionInfo, HistoryEntry, str]:
        try:
            return self.admin.commit(
                prepared, actor=ex.caller.id, reason=ex.request.purpose, request_id=ex.request_id
            )
        except VersionError as e:
            raise version_error(e) from None

    async def ListVersions(self, request: pb.ListVersionsRequest, context):
        def parse() -> Request:
            return Request(PURPOSE, ("",))

        def execute(_ex: Exec) -> Outcome[pb.ListVersionsResponse]:
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

        return await self.pipeline.run(context, "policy.read", parse, execute)


def _unreachable(_ex: Exec) -> Outcome[Any]:
    raise AssertionError("parse failed: execute never runs")


__all__ = ["PolicyAdminService", "bundle_files"]
