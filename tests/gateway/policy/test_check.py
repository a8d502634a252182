"""Bundle checks, in process and in a child that may crash or hang."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from gateway.policy.check import (
    ACTIONS,
    check_bundle,
    check_in_subprocess,
    main,
    plan_violations,
    sanity_inputs,
)

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped policies."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    return tmp_path / "policies"


def edit(policy_dir: Path, name: str, old: str, new: str) -> None:
    path = policy_dir / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_shipped_policies_are_clean() -> None:
    assert check_bundle(POLICIES) == []


def test_forbidden_builtin_named_with_file_and_line(policy_dir: Path) -> None:
    edit(policy_dir, "regions.rego", "else := {}", 'else := {"t": time.now_ns()}')
    [problem] = check_bundle(policy_dir)
    assert (problem.kind, problem.file, problem.rule) == ("builtin", "regions.rego", "constraints")
    lines = (policy_dir / "regions.rego").read_text(encoding="utf-8").splitlines()
    assert "time.now_ns" in lines[problem.line - 1]


def test_parse_error_named_with_file_and_line(policy_dir: Path) -> None:
    edit(policy_dir, "share.rego", "obligations := {", "obligations := + {")
    [problem] = check_bundle(policy_dir)
    assert (problem.kind, problem.file) == ("compile", "share.rego")
    lines = (policy_dir / "share.rego").read_text(encoding="utf-8").splitlines()
    assert "obligations := +" in lines[problem.line - 1]


def test_forbidden_builtin_in_a_rego_test_is_refused_too(policy_dir: Path) -> None:
    (policy_dir / "tests" / "x_test.rego").write_text(
        "package govgw.x_test\nimport rego.v1\ntest_x if { not http.send({}) }\n",
        encoding="utf-8",
    )
    [problem] = check_bundle(policy_dir)
    assert (problem.file, problem.line) == ("tests/x_test.rego", 3)


@pytest.mark.requirement("R2")
def test_plan_releasing_a_secret_field_is_caught(policy_dir: Path) -> None:
    edit(policy_dir, "datasets.rego", 'f.sensitivity != "secret"', "true")
    catalog = (policy_dir / "data" / "catalog.json").read_text(encoding="utf-8")
    # mark one shipped field secret, in the copy only
    (policy_dir / "data" / "catalog.json").write_text(
        catalog.replace(
            '"name": "ethnicity", "title": "民族", "type": "string", "sensitivity": "internal"',
            '"name": "ethnicity", "title": "民族", "type": "string", "sensitivity": "secret"',
        ),
        encoding="utf-8",
    )
    problems = check_bundle(policy_dir)
    assert problems
    assert all(p.kind == "plan" for p in problems)
    assert any("field ethnicity is secret" in p.message for p in problems)


def test_plan_allowing_unknown_kinds_is_caught(policy_dir: Path) -> None:
    edit(
        policy_dir,
        "decision.rego",
        'plan := plans.deny("CALLER_KIND_UNKNOWN"',
        'plan := plans.allow({}) if false\n\nplan2 := plans.deny("CALLER_KIND_UNKNOWN"',
    )
    edit(
        policy_dir,
        "decision.rego",
        'else := plans.deny("ACTION_UNKNOWN"',
        'plan := plans.deny("ACTION_UNKNOWN"',
    )
    problems = check_bundle(policy_dir)
    assert any("allows unknown caller kind 'robot'" in p.message for p in problems)


def test_plan_violations_judges_documents() -> None:
    catalog = {"datasets": {"d": {"predicates": ["p"], "fields": [
        {"name": "a", "sensitivity": "public"}, {"name": "s", "sensitivity": "secret"}]}}}  # fmt: skip
    inp = {"caller": {"kind": "agency"}, "action": "lookup", "dataset": "d"}
    keep = {"operator": "keep", "params": {}}
    assert plan_violations({"allow": True, "fields": {"a": keep}}, inp, catalog) == []
    assert plan_violations(None, inp, catalog) == ["plan is not an object with a boolean allow"]
    assert plan_violations({"allow": False, "reason": "nope"}, inp, catalog)
    assert plan_violations({"allow": True, "fields": {"s": keep}}, inp, catalog) == [
        "field s is secret"
    ]
    assert plan_violations({"allow": True, "fields": {"z": keep}}, inp, catalog) == [
        "field z is not in the catalog"
    ]
    assert plan_violations({"allow": True, "predicates": ["q"]}, inp, catalog)
    grant = {"id": "g", "fields": ["s"]}
    doc = {"allow": True, "fields": {"a": keep}, "grant_id": "g"}
    assert plan_violations(doc, inp, catalog, [grant]) == ["field a is not in grant g"]


def test_sanity_inputs_cover_every_kind_action_and_dataset() -> None:
    catalog = {"datasets": {"x": {}, "y": {}}}
    inputs = sanity_inputs(catalog)
    # 16 + five emergency, six subject-rights, two opening, one deadlines, one conflicts
    assert len(ACTIONS) == 31 and "conflicts.read" in ACTIONS
    assert {"opening.suspend", "opening.read", "deadlines.read"} <= set(ACTIONS)
    assert "subject.records" in ACTIONS
    assert len(inputs) == 5 * 32 * 4  # kinds + "robot", actions + "delete"
    assert {i["dataset"] for i in inputs} == {"x", "y", "", "no.such.dataset"}


def test_cli_reports_and_exits(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(POLICIES), "--memory-mb", "0"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out
    edit(policy_dir, "plans.rego", 'else := "standard"', "else := ")
    assert main([str(policy_dir), "--memory-mb", "0", "--json"]) == 1


# ----- in a child process --------------------------------------------------------------------


def test_subprocess_check_of_shipped_policies_runs_tests() -> None:
    assert check_in_subprocess(POLICIES) == []


def test_subprocess_reports_failing_rego_test(policy_dir: Path) -> None:
    # plan sanity cannot see this one: only the Rego tests pin the audit level
    edit(policy_dir, "plans.rego", '"audit_level": "full"', '"audit_level": "none"')
    problems = check_in_subprocess(policy_dir)
    assert problems
    assert {p.kind for p in problems} == {"test"}
    assert any("test_allow_defaults_release_nothing" in p.message for p in problems)


def test_subprocess_contains_a_crashing_policy(policy_dir: Path) -> None:
    # numbers.range materializes its array: regorus aborts when the allocation fails
    edit(policy_dir, "decision.rego", "else := routed",
         "else := routed if count(numbers.range(1, 1000000000000)) > 0")  # fmt: skip
    [problem] = check_in_subprocess(policy_dir)
    assert problem.kind == "crash"
    assert "SIGABRT" in problem.message


def test_subprocess_contains_a_hanging_policy(policy_dir: Path) -> None:
    edit(policy_dir, "decision.rego", "else := routed",
         "else := routed if count([1 | some i in numbers.range(1, 100000); "
         "some j in numbers.range(1, 100000); i == j]) > 0")  # fmt: skip
    started = time.monotonic()
    [problem] = check_in_subprocess(policy_dir, timeout=2)
    assert problem.kind == "timeout"
    assert time.monotonic() - started < 10


def test_subprocess_reports_recursion_without_crashing(policy_dir: Path) -> None:
    edit(policy_dir, "regions.rego", "valid(code) if regex.match(`^[1-9][0-9]{5}$`, code)",
         "valid(code) if valid(code)")  # fmt: skip
    problems = check_in_subprocess(policy_dir)
    assert [p.kind for p in problems] == ["recursion"]
    assert problems[0].file == "regions.rego"
