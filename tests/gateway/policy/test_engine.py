"""RegorusEngine: vetting at load, per-thread engines, data versioning."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import regorus

from gateway.policy.bundle import BundleError, PolicyBundle, bundle_version, load_bundle
from gateway.policy.engine import (
    ALLOWED_BUILTINS,
    FORBIDDEN_BUILTINS,
    PolicyEngine,
    RegorusEngine,
    compile_modules,
    rego_error_text,
)

POLICIES = Path(__file__).resolve().parents[3] / "policies"
HEADER = "package govgw.decision\nimport rego.v1\n"


def bundle_of(modules: dict[str, str], data: dict[str, Any] | None = None) -> PolicyBundle:
    data = data or {}
    return PolicyBundle(modules, data, bundle_version(modules, data))


def problems_of(modules: dict[str, str]) -> list[Any]:
    with pytest.raises(BundleError) as exc:
        RegorusEngine(bundle_of(modules))
    return exc.value.problems


def request(kind: str = "agency", dataset: str = "population.basic") -> dict[str, Any]:
    return {
        "caller": {"id": "c1", "kind": kind, "department": "d", "region": "513221"},
        "action": "lookup",
        "dataset": dataset,
        "purpose": "p",
        "now": "2026-11-21T23:30:00Z",
    }


def test_regorus_engine_is_a_policy_engine() -> None:
    engine: PolicyEngine = RegorusEngine(load_bundle(POLICIES))
    assert engine.version.startswith("pv-")
    assert engine.evaluate(request(), {"grants": []})["allow"] is True


@pytest.mark.parametrize(
    ("call", "line"),
    [
        ('plan := http.send({"method": "get", "url": "http://x"})', 3),
        ('\nplan := {"now": time.now_ns()}', 4),
        ('plan := rand.intn("x", 10)', 3),
        ("plan := opa.runtime()", 3),
        ('plan := uuid.rfc4122("x")', 3),
        ('plan := net.lookup_ip_addr("example.org")', 3),
        ("plan := foo.bar(1)", 3),
        ('plan := crypto.sha256("x")', 3),
    ],
)
def test_forbidden_or_unknown_builtin_refused_with_file_and_line(call: str, line: int) -> None:
    [problem] = problems_of({"decision.rego": HEADER + call + "\n"})
    assert (problem.kind, problem.file, problem.line, problem.rule) == (
        "builtin",
        "decision.rego",
        line,
        "plan",
    )


def test_not_of_forbidden_builtin_is_refused() -> None:
    # The dangerous pattern: undefined http.send would make `not` pass.
    src = HEADER + 'allowed if { not http.send({"url": "http://x"}) }\nplan := {"allow": allowed}\n'
    [problem] = problems_of({"decision.rego": src})
    assert problem.rule == "allowed" and "http.send" in problem.message
    # and it really would have passed on regorus: the reason for the check
    raw = compile_modules({"decision.rego": src})
    assert raw.eval_rule("data.govgw.decision.allowed") is True


def test_forbidden_builtin_in_other_module_and_nested_expression() -> None:
    modules = {
        "decision.rego": HEADER + "plan := {}\n",
        "sub/util.rego": "package govgw.util\nimport rego.v1\n\n# c\n"
        "f(x) := y if {\n  y := [z | some z in x; z > time.now_ns()]\n}\n",
    }
    [problem] = problems_of(modules)
    assert (problem.file, problem.line, problem.rule) == ("sub/util.rego", 6, "f")


def test_user_functions_local_imported_and_qualified_are_fine() -> None:
    modules = {
        "util.rego": "package govgw.util\nimport rego.v1\ndouble(x) := 2 * x\n"
        "ns.triple(x) := 3 * x\n",
        "decision.rego": HEADER + "import data.govgw.util\nimport data.govgw.util as u\n"
        "inc(x) := x + 1\n"
        "plan := [inc(1), util.double(2), u.ns.triple(1), data.govgw.util.double(1), count([1])]\n",
    }
    engine = RegorusEngine(bundle_of(modules))
    assert engine.evaluate({}, {}) == [2, 4, 3, 2, 1]


def test_a_user_function_named_like_a_forbidden_builtin_is_still_refused() -> None:
    src = HEADER + "http.send(x) := 1\nplan := http.send(1)\n"
    assert [p.kind for p in problems_of({"decision.rego": src})] == ["builtin"]


def test_unknown_qualified_function_refused() -> None:
    [problem] = problems_of({"decision.rego": HEADER + "plan := data.govgw.nope.f(1)\n"})
    assert "data.govgw.nope.f" in problem.message


def test_recursive_functions_refused_before_they_crash_the_process() -> None:
    src = HEADER + "f(x) := g(x)\ng(x) := f(x)\nh(x) := h(x)\nplan := f(1)\n"
    problems = problems_of({"decision.rego": src})
    assert {p.kind for p in problems} == {"recursion"}
    assert {p.line for p in problems} >= {3, 5}


def test_function_mock_with_with_is_for_tests_only() -> None:
    src = HEADER + "x := 1\nplan := y if { y := x with count as sum }\n"
    [problem] = problems_of({"decision.rego": src})
    assert problem.kind == "with" and problem.line == 4
    # a test module may mock
    modules = {
        "decision.rego": HEADER + "plan := count([1, 2])\n",
        "tests/d_test.rego": "package govgw.d_test\nimport rego.v1\nimport data.govgw.decision\n"
        "test_mock if { decision.plan == 0 with count as 0 }\n",
    }
    RegorusEngine(bundle_of(modules))


def test_parse_error_names_file_and_line() -> None:
    [problem] = problems_of({"a.rego": HEADER + "\nplan := if {\n"})
    assert (problem.kind, problem.file, problem.line) == ("compile", "a.rego", 4)


@pytest.mark.parametrize("name", sorted(ALLOWED_BUILTINS))
def test_every_allowed_builtin_is_known_to_regorus(name: str) -> None:
    engine = regorus.Engine()
    engine.add_policy("t.rego", f"package t\nimport rego.v1\nx := {name}(1, 2, 3, 4, 5)\n")
    try:
        engine.eval_rule("data.t.x")
    except Exception as e:  # wrong arguments are fine; an unknown function is not
        assert "could not find function" not in rego_error_text(e)


def test_allowlist_and_forbidden_list_are_disjoint() -> None:
    assert not ALLOWED_BUILTINS & FORBIDDEN_BUILTINS


def test_engine_is_thread_bound_so_we_keep_one_per_thread() -> None:
    # Pin the regorus behaviour our design rests on: if it changes, revisit engine.py.
    engine = regorus.Engine()
    clone = engine.clone()
    errors: list[BaseException] = []

    def use() -> None:
        try:
            clone.eval_query("1")
        except BaseException as e:  # PanicException derives from BaseException
            errors.append(e)

    t = threading.Thread(target=use)
    t.start()
    t.join()
    assert errors and "unsendable" in str(errors[0])


def test_evaluate_from_eight_threads() -> None:
    engine = RegorusEngine(load_bundle(POLICIES))
    cases = [request(k, ds) for k in ("agency", "counter", "public") for ds in (
        "population.basic", "legal_entity.basic", "social_assistance.recipient")]  # fmt: skip
    expected = [engine.evaluate(c, {"grants": []}) for c in cases]
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            barrier.wait()
            out = []
            for _ in range(20):
                out = [engine.evaluate(c, {"grants": []}) for c in cases]
            results[n] = out
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 8
    assert all(r == expected for r in results.values())


def test_changed_data_reaches_every_thread() -> None:
    engine = RegorusEngine(load_bundle(POLICIES))
    inp = request("agency", "social_assistance.recipient")
    no_grants: dict[str, Any] = {"grants": []}
    with_grant = {
        "grants": [
            {
                "id": "g-1",
                "caller": "c1",
                "dataset": "social_assistance.recipient",
                "fields": ["name"],
                "purpose": "p",
                "expires_at": "2030-01-01T00:00:00Z",
                "status": "active",
            }
        ]
    }
    seen: list[tuple[str, str]] = []

    def work() -> None:
        before = engine.evaluate(inp, no_grants)["reason"]
        after = engine.evaluate(inp, with_grant)["grant_id"]
        seen.append((before, after))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [("GRANT_REQUIRED", "g-1")] * 4
    # back in this thread: an equal mapping in a new object is the same data
    assert engine.evaluate(inp, dict(with_grant))["grant_id"] == "g-1"
    assert engine.evaluate(inp, no_grants)["reason"] == "GRANT_REQUIRED"


def test_extra_data_may_not_replace_bundle_data() -> None:
    engine = RegorusEngine(load_bundle(POLICIES))
    with pytest.raises(ValueError, match="catalog"):
        engine.evaluate(request(), {"catalog": {}})


def test_evaluation_error_raises_and_undefined_is_none() -> None:
    engine = RegorusEngine(bundle_of({"d.rego": HEADER + 'plan := to_number("x")\n'}))
    with pytest.raises(RuntimeError):
        engine.evaluate({}, {})
    undefined = RegorusEngine(bundle_of({"d.rego": HEADER + "plan := 1 if false\n"}))
    assert undefined.evaluate({}, {}) is None


def test_entrypoint_is_configurable() -> None:
    bundle = replace(load_bundle(POLICIES))
    engine = RegorusEngine(bundle, entrypoint="data.govgw.callers.kinds")
    assert engine.evaluate({}, {}) == {"agency", "counter", "public", "admin"}


def test_engine_dropped_in_another_thread_leaks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from gateway.policy import engine as engine_mod

    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    bundle = load_bundle(POLICIES)
    box = [RegorusEngine(bundle)]  # prepared in this thread
    before = len(engine_mod._PER_THREAD.slots)

    def last_user() -> None:  # e.g. the request that still held the old policy
        box[0].evaluate(request(), {"grants": []})
        box.pop()

    t = threading.Thread(target=last_user)
    t.start()
    t.join()
    assert box == []
    RegorusEngine(bundle)  # this thread now drops the dead engine's slot, in its own thread
    assert len(engine_mod._PER_THREAD.slots) <= before
    assert unraisable == []
