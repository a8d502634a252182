"""Checking a policy bundle before it is served, and running its Rego tests.

Policy an administrator hands in is untrusted input: a policy can crash the
engine (regorus overflows its stack on recursion, aborts when an allocation
fails) or hang it (exponential parsing, huge iterations). So the gateway calls
`check_in_subprocess`, which runs this module as a child process with a
memory limit and a timeout; a child that dies or hangs is a problem like any
other, and the serving process stays up.

    python -m gateway.policy.check policies/ [--json] [--no-tests]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.policy.bundle import (
    BundleError,
    PolicyBundle,
    PolicyProblem,
    is_test_module,
    load_bundle,
)
from gateway.policy.engine import (
    ENTRYPOINT,
    RegorusEngine,
    compile_modules,
    parse_modules,
    rego_error_text,
    rule_line,
    rule_name,
    vet,
)
from gateway.policy.schema import data_problems

__all__ = [
    "PolicyProblem",
    "RegoSuite",
    "RegoTestResult",
    "check_bundle",
    "check_in_subprocess",
    "plan_violations",
    "run_rego_suite",
    "run_rego_tests",
    "suite_in_subprocess",
]

CALLER_KINDS = ("agency", "counter", "public", "admin")
ADMIN_KIND = "admin"
# Policy administration (PolicyAdminService). Only the admin kind may be allowed
# these, and a policy must never deny an administrator the means to undo it.
ADMIN_ACTIONS = (
    "policy.read",
    "policy.validate",
    "policy.test",
    "policy.impact",
    "policy.activate",
    "policy.rollback",
)
# The conflicts report (R16) compares providers' data: for administrators only.
COORDINATOR_ACTIONS = ("conflicts.read",)
LOCKOUT_ACTIONS = ("policy.read", "policy.validate", "policy.activate", "policy.rollback")
ACTIONS = (
    "lookup",
    "verify.identity",
    "verify.attributes",
    "catalog.read",
    "keys.read",
    *ADMIN_ACTIONS,
    # Applications and grants (AccessService): they release no fields.
    "access.apply",
    "access.read",
    "access.decide",
    "access.sweep",
    "usage.read",
    # Emergency mode (EmergencyService): they release no fields either.
    "emergency.declare",
    "emergency.end",
    "emergency.read",
    "emergency.sealing",
    "emergency.seal",
    # Data-subject rights (SubjectService): they release no pool fields.
    "subject.usage",
    "subject.correct",
    "subject.withdraw",
    "subject.read",
    "subject.records",
    "subject.review",
    # Suspending a dataset's opening (OpeningService) and the deadlines report:
    # they release no pool fields.
    "opening.suspend",
    "opening.read",
    "deadlines.read",
    *COORDINATOR_ACTIONS,
)
DATASET_ACTIONS = ("lookup", "verify.identity", "verify.attributes")
REASON = re.compile(r"^[A-Z][A-Z0-9_]*$")
SANITY_NOW = "2026-01-01T00:00:00Z"
SANITY_EXPIRY = "2099-01-01T00:00:00Z"
CHILD_MEMORY_MB = 512  # on top of what the child has mapped at start


@dataclass(frozen=True)
class RegoTestResult:
    name: str  # "govgw.share_test.test_unconditional_agency"
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class RegoSuite:
    results: list[RegoTestResult]
    # file -> (covered lines, not covered lines), serving modules only
    coverage: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def file_coverage(self, path: str) -> float:
        covered, missed = self.coverage[path]
        total = len(covered) + len(missed)
        return 100.0 * len(covered) / total if total else 100.0

    @property
    def coverage_percent(self) -> float:
        """Lines of serving rules evaluated by the tests, over all such lines (as `opa test`)."""
        covered = sum(len(c) for c, _ in self.coverage.values())
        total = covered + sum(len(m) for _, m in self.coverage.values())
        return 100.0 * covered / total if total else 100.0

    def to_json(self) -> dict[str, Any]:
        return {
            "results": [r.__dict__ for r in self.results],
            "coverage": {
                f: {"covered": c, "not_covered": m} for f, (c, m) in self.coverage.items()
            },
            "coverage_percent": round(self.coverage_percent, 2),
            "passed": self.passed,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RegoSuite:
        return cls(
            [RegoTestResult(**r) for r in doc.get("results", [])],
            {
                f: (list(v.get("covered", [])), list(v.get("not_covered", [])))
                for f, v in (doc.get("coverage") or {}).items()
            },
        )


# ----- plan sanity --------------------------------------------------------------------------


def plan_violations(
    doc: Any, input: Mapping[str, Any], catalog: Mapping[str, Any], grants: Sequence[Any] = ()
) -> list[str]:
    """What is wrong with one plan document, judged against the catalog.

    These are invariants any policy must keep, whatever its rules: the plan
    is an object, a deny names an UPPER_SNAKE reason, an allow only names
    fields the catalog has and never a secret one, only the dataset's
    predicates, and an unknown caller kind or action is denied.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("allow"), bool):
        return ["plan is not an object with a boolean allow"]
    caller = input.get("caller") or {}
    if not doc["allow"]:
        reason = doc.get("reason")
        if not isinstance(reason, str) or not REASON.match(reason):
            return [f"deny reason {reason!r} is not UPPER_SNAKE"]
        return [] if isinstance(doc.get("message", ""), str) else ["deny message is not a string"]
    out: list[str] = []
    if (
        input.get("action") in (*ADMIN_ACTIONS, *COORDINATOR_ACTIONS)
        and caller.get("kind") != ADMIN_KIND
    ):
        out.append(
            f"grants {input.get('action')} to kind {caller.get('kind')!r}, not only to admin"
        )
    if caller.get("kind") not in CALLER_KINDS:
        out.append(f"allows unknown caller kind {caller.get('kind')!r}")
    if input.get("action") not in ACTIONS:
        out.append(f"allows unknown action {input.get('action')!r}")
    dataset = (catalog.get("datasets") or {}).get(input.get("dataset"))
    if input.get("action") in DATASET_ACTIONS and dataset is None:
        out.append("allows a dataset that is not in the catalog")
    catalog_fields = {f["name"]: f for f in (dataset or {}).get("fields", [])}
    fields = doc.get("fields", {})
    if not isinstance(fields, dict):
        return [*out, "fields is not an object"]
    if fields and input.get("action") != "lookup":
        out.append(f"{input.get('action')} plan releases fields")
    grant = next((g for g in grants if g.get("id") == doc.get("grant_id")), None)
    for name, treatment in fields.items():
        f = catalog_fields.get(name)
        if f is None:
            out.append(f"field {name} is not in the catalog")
        elif f.get("sensitivity") == "secret":
            out.append(f"field {name} is secret")
        if grant is not None and name not in grant.get("fields", []):
            out.append(f"field {name} is not in grant {grant['id']}")
        if not (
            isinstance(treatment, dict)
            and isinstance(treatment.get("operator"), str)
            and isinstance(treatment.get("params", {}), dict)
        ):
            out.append(f"field {name} has no valid treatment")
    predicates = doc.get("predicates", [])
    if not isinstance(predicates, list) or not all(isinstance(p, str) for p in predicates):
        out.append("predicates is not a list of strings")
    elif not set(predicates) <= set((dataset or {}).get("predicates", [])):
        out.append(f"predicates {sorted(predicates)} are not all the dataset's")
    for key, kind in (("constraints", dict), ("obligations", dict)):
        if not isinstance(doc.get(key, {}), kind):
            out.append(f"{key} is not an object")
    for key in ("grant_id", "expires_at"):
        if not isinstance(doc.get(key, ""), str):
            out.append(f"{key} is not a string")
    return out


def sanity_inputs(catalog: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every caller kind x action x dataset, plus unknowns, as plan inputs."""
    datasets = [*sorted(catalog.get("datasets") or {}), "", "no.such.dataset"]
    inputs = []
    for kind in (*CALLER_KINDS, "robot"):
        for action in (*ACTIONS, "delete"):
            for dataset in datasets:
                inputs.append(
                    {
                        "caller": {
                            "id": "sanity-caller",
                            "kind": kind,
                            "department": "sanity",
                            "region": "513221",
                        },
                        "action": action,
                        "dataset": dataset,
                        "purpose": "sanity",
                        "now": SANITY_NOW,
                    }
                )
    return inputs


def sanity_grants(catalog: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A grant on every dataset for the sanity caller, so grant paths are exercised too."""
    return [
        {
            "id": f"g-sanity-{i}",
            "caller": "sanity-caller",
            "dataset": name,
            "fields": [f["name"] for f in ds.get("fields", [])][::2],
            "purpose": "sanity",
            "expires_at": SANITY_EXPIRY,
            "status": "active",
        }
        for i, (name, ds) in enumerate(sorted((catalog.get("datasets") or {}).items()))
    ]


def _plan_problems(bundle: PolicyBundle) -> list[PolicyProblem]:
    catalog = bundle.data.get("catalog")
    if not isinstance(catalog, dict):
        return [PolicyProblem("data", "data/catalog.json is missing or not an object")]
    engine = RegorusEngine(bundle)
    problems: list[PolicyProblem] = []
    for grants in ([], sanity_grants(catalog)):
        extra = {"grants": grants}
        for inp in sanity_inputs(catalog):
            what = f"{inp['caller']['kind']} {inp['action']} {inp['dataset'] or '-'}"
            try:
                doc = engine.evaluate(inp, extra)
            except Exception as e:
                problems.append(PolicyProblem("plan", f"{what}: {rego_error_text(e)}"))
                continue
            for v in plan_violations(doc, inp, catalog, grants):
                problems.append(PolicyProblem("plan", f"{what}: {v}", rule=ENTRYPOINT))
            if (
                inp["caller"]["kind"] == ADMIN_KIND
                and inp["action"] in LOCKOUT_ACTIONS
                and inp["dataset"] == ""
                and not grants
                and not (isinstance(doc, dict) and doc.get("allow") is True)
            ):
                reason = doc.get("reason") if isinstance(doc, dict) else None
                problems.append(
                    PolicyProblem(
                        "lockout",
                        f"denies {inp['action']} to administrators ({reason or 'undefined'}):"
                        " once active, this policy could not be corrected or rolled back",
                        rule=ENTRYPOINT,
                    )
                )
    return problems


def check_bundle(policy_dir: Path) -> list[PolicyProblem]:
    """Compile errors, forbidden builtins, recursion, data schema, and plan output sanity.

    Runs in this process: use check_in_subprocess for a bundle not yet trusted.
    """
    try:
        bundle = load_bundle(policy_dir, include_tests=True)
        engine = compile_modules(bundle.modules)
    except BundleError as e:
        return e.problems
    problems = vet(engine, bundle.modules) + data_problems(bundle.files)
    if problems:
        return problems  # never evaluate a bundle known to be unsafe or on malformed data
    serving = load_bundle(policy_dir)
    return _plan_problems(serving)


# ----- Rego tests ---------------------------------------------------------------------------


def rego_test_names(bundle: PolicyBundle, engine: Any) -> list[str]:
    names: list[str] = []
    for m in parse_modules(engine.get_ast_as_json(), bundle.modules):
        for rule in m.rules:
            name = rule_name(rule)
            full = f"{m.package.removeprefix('data.')}.{name}"
            if name.startswith("test_") and full not in names:
                names.append(full)
    return names


def run_rego_suite(policy_dir: Path, *, coverage: bool = False) -> RegoSuite:
    """Evaluate every `test_` rule; a test passes only if it is exactly true."""
    bundle = load_bundle(policy_dir, include_tests=True)
    engine = compile_modules(bundle.modules)
    problems = vet(engine, bundle.modules)
    if problems:
        raise BundleError(problems)
    engine.add_data(bundle.data)
    if "grants" not in bundle.data:
        engine.add_data({"grants": []})
    engine.set_enable_coverage(coverage)
    results = []
    for name in rego_test_names(bundle, engine):
        try:
            value = engine.eval_rule(f"data.{name}")
        except Exception as e:
            results.append(RegoTestResult(name, False, rego_error_text(e)))
            continue
        if value is True:
            results.append(RegoTestResult(name, True))
        else:
            results.append(RegoTestResult(name, False, "undefined" if value is None else "false"))
    report: dict[str, tuple[list[int], list[int]]] = {}
    if coverage:
        for f in json.loads(engine.get_coverage_report_as_json()).get("files", []):
            if not is_test_module(f["path"]):
                report[f["path"]] = (sorted(f["covered"]), sorted(f["not_covered"]))
        # regorus leaves out a module no test reached at all: it is 0 %, not absent.
        for m in parse_modules(engine.get_ast_as_json(), bundle.modules):
            if not m.test and m.path not in report:
                report[m.path] = ([], sorted({rule_line(r) for r in m.rules} - {0}))
    return RegoSuite(results, report)


def run_rego_tests(policy_dir: Path) -> list[RegoTestResult]:
    return run_rego_suite(policy_dir).results


# ----- the child process --------------------------------------------------------------------


def check_in_subprocess(
    policy_dir: Path, timeout: float = 30, *, run_tests: bool = True
) -> list[PolicyProblem]:
    """check_bundle (and the Rego tests) in a child, so a crash or hang cannot hurt us."""
    args = [str(policy_dir)] + ([] if run_tests else ["--no-tests"])
    doc, problems = run_child("gateway.policy.check", args, timeout)
    if doc is None:
        return problems
    try:
        return [PolicyProblem.from_json(p) for p in doc["problems"]]
    except (KeyError, TypeError, ValueError):
        return [PolicyProblem("crash", "policy checker gave a malformed report")]


def suite_in_subprocess(
    policy_dir: Path, timeout: float = 30
) -> tuple[list[PolicyProblem], RegoSuite | None]:
    """check_bundle, then the Rego tests with coverage, in a child: (problems, suite)."""
    doc, problems = run_child("gateway.policy.check", [str(policy_dir), "--suite"], timeout)
    if doc is None:
        return problems, None
    try:
        problems = [PolicyProblem.from_json(p) for p in doc["problems"]]
        suite = RegoSuite.from_json(doc["suite"]) if doc.get("suite") else None
    except (KeyError, TypeError, ValueError):
        return [PolicyProblem("crash", "policy checker gave a malformed report")], None
    return problems, suite


def run_child(
    module: str, args: Sequence[str], timeout: float
) -> tuple[dict[str, Any] | None, list[PolicyProblem]]:
    """Run `python -m module args --json` in a child: (its JSON report, or the problem)."""
    cmd = [sys.executable, "-m", module, *args, "--json"]
    env = {**os.environ, "RUST_BACKTRACE": "0"}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group, so a timeout kills all of it
        )
    except OSError as e:
        return None, [PolicyProblem("crash", f"cannot start the policy checker: {e}")]
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, [PolicyProblem("timeout", f"policy check did not finish within {timeout:g} s")]
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        tail = _tail(err)
        return None, [PolicyProblem("crash", f"policy checker died with {name}{tail}")]
    try:
        doc = json.loads(out)
        if not isinstance(doc, dict):
            raise ValueError
        return doc, []
    except ValueError:
        return None, [
            PolicyProblem(
                "crash", f"policy checker exited {proc.returncode} without a report{_tail(err)}"
            )
        ]


def _tail(err: bytes) -> str:
    lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    return f": {lines[-1][:300]}" if lines else ""


def _limit_memory(mb: int) -> None:
    # Set by the child on itself (not via preexec_fn, which is unsafe in a
    # threaded server): a policy that allocates without bound aborts the
    # child instead of swapping the machine. The budget is on top of what is
    # mapped already: importing regorus alone reserves about 1 GiB of address space.
    import resource

    mapped = 0
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmSize:"))
        mapped = int(line.split()[1]) * 1024
    limit = mapped + mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.policy.check")
    parser.add_argument("policy_dir", type=Path)
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    parser.add_argument("--no-tests", action="store_true", help="skip the Rego tests")
    parser.add_argument("--suite", action="store_true", help="report tests with coverage")
    parser.add_argument("--memory-mb", type=int, default=CHILD_MEMORY_MB)
    args = parser.parse_args(argv)
    if args.memory_mb > 0:
        _limit_memory(args.memory_mb)
    problems = check_bundle(args.policy_dir)
    results: list[RegoTestResult] = []
    suite: RegoSuite | None = None
    if not problems and not args.no_tests:
        try:
            suite = run_rego_suite(args.policy_dir, coverage=args.suite)
            results = suite.results
        except BundleError as e:
            problems = e.problems
        problems += [
            PolicyProblem("test", f"{r.name}: {r.message}") for r in results if not r.passed
        ]
    if args.json:
        report: dict[str, Any] = {
            "problems": [p.to_json() for p in problems],
            "tests": [r.__dict__ for r in results],
        }
        if args.suite and suite is not None:
            report["suite"] = suite.to_json()
        print(json.dumps(report, ensure_ascii=False))
    else:
        for p in problems:
            print(p)
        passed = sum(r.passed for r in results)
        print(f"{len(problems)} problem(s); Rego tests {passed}/{len(results)} passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
