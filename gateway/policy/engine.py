"""The embedded Rego engine: prepare once, evaluate many.

`PolicyEngine` is the one small interface the gateway depends on, so an OPA
server (or another embedded engine) can replace regorus later.

Two regorus facts shape this module (see /work/shared/notes/rego-engines.md):

- An `Engine` is bound to the thread that made it; even a clone made in one
  thread panics when used in another, and one dropped in another thread is
  leaked. So every thread prepares its own engine from the bundle's sources,
  lazily (about 4 ms), and keeps it in thread-local storage.
- An unknown or unsupported builtin can evaluate to undefined, and then
  `not f(x)` passes. So before a bundle is served we walk its AST and refuse
  every call that is neither a user-defined function nor an allowlisted pure,
  deterministic builtin. A recursive function crashes the process (SIGSEGV),
  so recursion among functions is refused too.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import regorus

from gateway.policy.bundle import (
    BundleError,
    PolicyBundle,
    PolicyProblem,
    canonical_json,
    is_test_module,
)

ENTRYPOINT = "data.govgw.decision.plan"

# Pure, deterministic builtins that regorus implements (tests/gateway/policy
# checks each one is known to the installed regorus). Anything else is refused.
ALLOWED_BUILTINS: frozenset[str] = frozenset(
    [
        "abs",
        "ceil",
        "floor",
        "round",
        "numbers.range",
        "numbers.range_step",
        "to_number",
        "count",
        "sum",
        "product",
        "max",
        "min",
        "sort",
        "array.concat",
        "array.slice",
        "array.reverse",
        "intersection",
        "union",
        "object.get",
        "object.keys",
        "object.remove",
        "object.filter",
        "object.union",
        "object.union_n",
        "object.subset",
        "json.filter",
        "json.remove",
        "json.patch",
        "json.marshal",
        "json.unmarshal",
        "json.is_valid",
        "concat",
        "contains",
        "endswith",
        "startswith",
        "format_int",
        "indexof",
        "indexof_n",
        "lower",
        "upper",
        "replace",
        "split",
        "sprintf",
        "substring",
        "trim",
        "trim_left",
        "trim_right",
        "trim_prefix",
        "trim_suffix",
        "trim_space",
        "strings.replace_n",
        "strings.reverse",
        "strings.count",
        "strings.any_prefix_match",
        "strings.any_suffix_match",
        "regex.match",
        "regex.is_valid",
        "regex.split",
        "regex.find_n",
        "regex.replace",
        "regex.find_all_string_submatch_n",
        "glob.match",
        "glob.quote_meta",
        "is_string",
        "is_number",
        "is_boolean",
        "is_array",
        "is_set",
        "is_object",
        "is_null",
        "type_name",
        "time.parse_rfc3339_ns",
        "time.parse_ns",
        "time.parse_duration_ns",
        "time.date",
        "time.clock",
        "time.weekday",
        "time.add_date",
        "time.diff",
        "base64.encode",
        "base64.decode",
        "base64.is_valid",
        "base64url.encode",
        "base64url.decode",
        "base64url.encode_no_pad",
        "hex.encode",
        "hex.decode",
        "urlquery.encode",
        "urlquery.decode",
        "urlquery.encode_object",
        "urlquery.decode_object",
        "semver.compare",
        "semver.is_valid",
        "units.parse",
        "units.parse_bytes",
        "walk",
        "graph.reachable",
        "bits.and",
        "bits.or",
        "bits.xor",
        "bits.negate",
        "bits.lsh",
        "bits.rsh",
    ]
)

# Spelled names refused even if a user function of that name exists: regorus
# resolves a local function first, but we do not want a policy whose meaning
# depends on that precedence, nor one that reads as if it made network calls.
FORBIDDEN_BUILTINS: frozenset[str] = frozenset(
    {"time.now_ns", "print", "trace", "opa.runtime", "uuid.rfc4122", "uuid.parse"}
)
FORBIDDEN_NAMESPACES: tuple[str, ...] = ("http.", "net.", "rand.", "opa.", "io.", "crypto.")


class PolicyEngine(Protocol):
    version: str

    def evaluate(self, input: Mapping[str, Any], extra_data: Mapping[str, Any]) -> Any:
        """The value of the plan rule (None when undefined); raises on evaluation errors."""
        ...

    def prepare(self) -> None:
        """Make this engine ready to evaluate in the calling thread (before it is swapped in)."""
        ...


def rego_error_text(exc: BaseException) -> str:
    """regorus error text without the Rust backtrace it appends."""
    return str(exc).split("Stack backtrace:")[0].strip()


def compile_modules(modules: Mapping[str, str]) -> regorus.Engine:
    """A regorus engine holding the modules; raises BundleError on parse errors."""
    engine = regorus.Engine()
    problems = []
    for path, source in modules.items():
        try:
            engine.add_policy(path, source)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # a regorus panic is a BaseException, and a bad module
            problems.append(_parse_problem(path, rego_error_text(e)))
    if problems:
        raise BundleError(problems)
    return engine


def _parse_problem(path: str, text: str) -> PolicyProblem:
    # regorus locates errors as "--> file:line:col"
    line = 0
    for token in text.split():
        if token.startswith(path + ":"):
            parts = token[len(path) + 1 :].split(":")
            line = int(parts[0]) if parts and parts[0].isdigit() else 0
            break
    message = text.splitlines()[-1].removeprefix("error: ") if text else "cannot parse"
    return PolicyProblem("compile", message, path, line)


# ----- static analysis of the compiled AST ------------------------------------------------


@dataclass
class _Module:
    path: str
    source: bytes
    package: str  # "data.govgw.share"
    imports: dict[str, str]  # alias -> "data.govgw.plans" (or "input.x": never a function)
    rules: list[dict[str, Any]]
    test: bool


@dataclass
class _Function:
    full: str
    path: str
    line: int
    calls: set[str] = field(default_factory=set)


def ref_name(node: Any) -> str | None:
    """Dotted name of a static reference (`a.b["c"]` -> "a.b.c"); None if dynamic."""
    if not isinstance(node, dict):
        return None
    if "Var" in node:
        return str(node["Var"]["value"])
    if "RefDot" in node:
        base = ref_name(node["RefDot"]["refr"])
        name = node["RefDot"]["field"][1]
        return None if base is None else f"{base}.{name}"
    if "RefBrack" in node:
        base = ref_name(node["RefBrack"]["refr"])
        index = node["RefBrack"]["index"]
        if base is not None and isinstance(index, dict) and "String" in index:
            return f"{base}.{index['String']['value']}"
    return None


def _rule_head(rule: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """(kind, head refr node, head variant) of a rule."""
    if "Default" in rule:
        return "Default", rule["Default"]["refr"], "Default"
    spec = rule["Spec"]
    variant, head = next(iter(spec["head"].items()))
    return "Spec", head["refr"], variant


def rule_name(rule: dict[str, Any]) -> str:
    _, refr, _ = _rule_head(rule)
    while isinstance(refr, dict) and "RefBrack" in refr:  # o[k] := v defines o
        refr = refr["RefBrack"]["refr"]
    return ref_name(refr) or "?"


def rule_line(rule: dict[str, Any]) -> int:
    body = next(iter(rule.values()))
    return int(body.get("span", {}).get("line", 0))


def _walk(node: Any, key: str) -> Iterator[Any]:
    """Every value stored under `key` anywhere in the tree."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            for k, v in n.items():
                if k == key:
                    yield v
                stack.append(v)
        elif isinstance(n, list):
            stack.extend(n)


def parse_modules(ast_json: str, sources: Mapping[str, str]) -> list[_Module]:
    modules = []
    for entry in json.loads(ast_json):
        path = entry["source"]["file"]
        source = sources.get(path, entry["source"].get("contents", "")).encode()
        ast = entry["ast"]
        imports = {}
        for imp in ast.get("imports", []):
            target = ref_name(imp["refr"]) or ""
            if not target.startswith(("data.", "input")):
                continue  # rego.v1, future.keywords: not namespaces
            span = imp.get("as")
            alias = (
                source[span["start"] : span["end"]].decode()
                if isinstance(span, dict)
                else target.rsplit(".", 1)[-1]
            )
            imports[alias] = target
        modules.append(
            _Module(
                path=path,
                source=source,
                package="data." + (ref_name(ast["package"]["refr"]) or ""),
                imports=imports,
                rules=ast.get("rules", []),
                test=is_test_module(path),
            )
        )
    return modules


def analyze(modules: list[_Module]) -> list[PolicyProblem]:
    """Forbidden or unknown calls, function mocks outside tests, recursion."""
    functions: dict[str, _Function] = {}
    for m in modules:
        for rule in m.rules:
            if _rule_head(rule)[2] == "Func":
                full = f"{m.package}.{rule_name(rule)}"
                functions.setdefault(full, _Function(full, m.path, rule_line(rule)))

    problems: list[PolicyProblem] = []
    for m in modules:
        for rule in m.rules:
            name = rule_name(rule)
            owner = functions.get(f"{m.package}.{name}") if _rule_head(rule)[2] == "Func" else None
            for call in _walk(rule, "Call"):
                line = int(call.get("span", {}).get("line", 0)) or rule_line(rule)
                problem, target = _check_call(call, m, functions)
                if problem:
                    problems.append(PolicyProblem("builtin", problem, m.path, line, name))
                elif target and owner:
                    owner.calls.add(target)
            if not m.test:
                for mods in _walk(rule, "with_mods"):
                    for mod in mods:
                        target = ref_name(mod.get("refr")) or "?"
                        if not target.startswith(("input", "data")):
                            problems.append(
                                PolicyProblem(
                                    "with",
                                    f"`with {target}` replaces a function: only tests may mock",
                                    m.path,
                                    rule_line(rule),
                                    name,
                                )
                            )
    problems.extend(_recursion(functions))
    return problems


def _check_call(
    call: dict[str, Any], m: _Module, functions: Mapping[str, _Function]
) -> tuple[str, str]:
    """(problem, resolved user function) for one call; one of them is empty."""
    spelled = ref_name(call.get("fcn"))
    if spelled is None:
        return "dynamic function reference", ""
    if spelled in FORBIDDEN_BUILTINS or spelled.startswith(FORBIDDEN_NAMESPACES):
        return f"calls forbidden builtin {spelled} (not pure or not deterministic)", ""
    head, _, rest = spelled.partition(".")
    if head == "data":
        candidates = [spelled]
    elif head in m.imports:
        candidates = [m.imports[head] + ("." + rest if rest else "")]
    else:
        candidates = [f"{m.package}.{spelled}"]
    for full in candidates:
        if full in functions:
            return "", full
    if head != "data" and head not in m.imports and spelled in ALLOWED_BUILTINS:
        return "", ""
    return f"calls {spelled}, which is neither a policy function nor an allowed builtin", ""


def _recursion(functions: Mapping[str, _Function]) -> list[PolicyProblem]:
    # regorus overflows its stack on recursive functions (the process dies),
    # and Rego forbids recursion anyway: report every function on a cycle.
    problems = []
    on_cycle: set[str] = set()
    for start in functions:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            fn, trail = stack.pop()
            for callee in functions[fn].calls:
                if callee == start:
                    if start not in on_cycle:
                        on_cycle.update(trail)
                        f = functions[start]
                        cycle = " -> ".join([*trail, start])
                        problems.append(
                            PolicyProblem(
                                "recursion", f"recursive function: {cycle}", f.path, f.line, start
                            )
                        )
                elif callee not in seen and callee in functions:
                    seen.add(callee)
                    stack.append((callee, [*trail, callee]))
    return problems


def vet(engine: regorus.Engine, modules: Mapping[str, str]) -> list[PolicyProblem]:
    return analyze(parse_modules(engine.get_ast_as_json(), modules))


# ----- the engine ------------------------------------------------------------------------


@dataclass
class _Slot:
    owner: weakref.ref[RegorusEngine]
    engine: regorus.Engine
    data_key: str | None = None


class _PerThread(threading.local):
    """Each thread's prepared engines, keyed by the RegorusEngine that owns them.

    They live with the thread, not with their owner: a regorus Engine must be
    dropped in its own thread (elsewhere pyo3 refuses and leaks it), and an
    owner may die in any thread, e.g. when a new policy is activated. A thread
    drops the engines of dead owners the next time it prepares one.
    """

    def __init__(self) -> None:
        self.slots: dict[int, _Slot] = {}


_PER_THREAD = _PerThread()
_TOKENS = itertools.count(1)


class RegorusEngine:
    """PolicyEngine on regorus: one prepared engine per thread, data reloaded on change."""

    def __init__(self, bundle: PolicyBundle, *, entrypoint: str = ENTRYPOINT) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.entrypoint = entrypoint
        self._token = next(_TOKENS)
        # Prepare (and vet) once here so a bad bundle fails at load, not on a request;
        # this engine then serves the constructing thread.
        engine = compile_modules(bundle.modules)
        problems = vet(engine, bundle.modules)
        if problems:
            raise BundleError(problems)
        self._adopt(engine)
        # (mapping last seen, its content key): identity check first, so the hot path
        # does not re-hash data that has not changed.
        self._extra: tuple[Mapping[str, Any], str] | None = None

    def prepare(self) -> None:
        # Compiling takes milliseconds: do it before the swap, not on the first request.
        if self._token not in _PER_THREAD.slots:
            self._adopt(compile_modules(self.bundle.modules))

    def evaluate(self, input: Mapping[str, Any], extra_data: Mapping[str, Any]) -> Any:
        slot = _PER_THREAD.slots.get(self._token)
        if slot is None:
            slot = self._adopt(compile_modules(self.bundle.modules))
        key = self._data_key(extra_data)
        engine = slot.engine
        if slot.data_key != key:
            clash = self.bundle.data.keys() & extra_data.keys()
            if clash:
                raise ValueError(f"extra data would replace bundle data: {sorted(clash)}")
            engine.clear_data()
            engine.add_data(self.bundle.data)
            engine.add_data(dict(extra_data))
            slot.data_key = key
        engine.set_input(dict(input))
        return engine.eval_rule(self.entrypoint)

    def _adopt(self, engine: regorus.Engine) -> _Slot:
        slots = _PER_THREAD.slots
        for token in [t for t, s in slots.items() if s.owner() is None]:
            del slots[token]
        slot = slots[self._token] = _Slot(weakref.ref(self), engine)
        return slot

    def _data_key(self, extra_data: Mapping[str, Any]) -> str:
        seen = self._extra
        if seen is not None and seen[0] is extra_data:
            return seen[1]
        key = hashlib.sha256(canonical_json(dict(extra_data))).hexdigest()
        self._extra = (extra_data, key)  # one tuple store: atomic under the GIL
        return key
