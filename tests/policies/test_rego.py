"""The Rego unit tests (policies/tests/*_test.rego), one pytest case per Rego test."""

from __future__ import annotations

import re
import shutil
from functools import cache
from pathlib import Path

import pytest

from gateway.policy.bundle import load_bundle
from gateway.policy.check import RegoSuite, rego_test_names, run_rego_suite, run_rego_tests
from gateway.policy.engine import compile_modules

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@cache
def suite() -> RegoSuite:
    return run_rego_suite(POLICIES, coverage=True)


def _names() -> list[str]:
    bundle = load_bundle(POLICIES, include_tests=True)
    return rego_test_names(bundle, compile_modules(bundle.modules))


@pytest.mark.parametrize("name", _names())
def test_rego(name: str) -> None:
    result = next(r for r in suite().results if r.name == name)
    assert result.passed, f"{name}: {result.message}"


def test_every_serving_line_is_covered() -> None:
    coverage = suite().coverage
    assert set(coverage) == set(load_bundle(POLICIES).modules)
    uncovered = {f: missed for f, (_, missed) in coverage.items() if missed}
    assert uncovered == {}


def test_every_deny_reason_is_tested() -> None:
    sources = load_bundle(POLICIES, include_tests=True).modules
    policy = "".join(s for p, s in sources.items() if not p.startswith("tests/"))
    tests = "".join(s for p, s in sources.items() if p.startswith("tests/"))
    reasons = set(re.findall(r'"([A-Z][A-Z_]+)"', policy))
    assert {"GRANT_REQUIRED", "UNKNOWN_DATASET", "DATASET_NOT_SHARED"} <= reasons
    assert {r for r in reasons if f'"{r}"' not in tests} == set()


def test_a_failing_rego_test_is_reported(tmp_path: Path) -> None:
    shutil.copytree(POLICIES, tmp_path / "p")
    (tmp_path / "p" / "tests" / "broken_test.rego").write_text(
        "package govgw.broken_test\n"
        "import rego.v1\n"
        "import data.govgw.decision\n"
        "test_false if { decision.plan.allow with input as {} }\n"
        'test_error if { to_number("x") == 1 }\n'
        "test_true if { true }\n",
        encoding="utf-8",
    )
    results = {r.name: r for r in run_rego_tests(tmp_path / "p")}
    assert not results["govgw.broken_test.test_false"].passed
    assert results["govgw.broken_test.test_false"].message == "undefined"
    assert not results["govgw.broken_test.test_error"].passed
    assert "could not parse string as number" in results["govgw.broken_test.test_error"].message
    assert results["govgw.broken_test.test_true"].passed
