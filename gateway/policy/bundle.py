"""Policy bundles: the Rego modules and data the engine is prepared from.

A bundle is read from a policy directory (`policies/`): every `*.rego` file
is a module, every `data/*.json` file is data under its stem (`catalog.json`
becomes `data.catalog`). Grants are not bundle data: they change while the
gateway runs and reach the engine at evaluation time.

The version is a content address, so two gateways serving the same files
report the same version, and any edit, even to data, changes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEST_SUFFIX = "_test.rego"
TEST_DIR = "tests"


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with a policy, located as precisely as we can."""

    kind: str  # compile | builtin | recursion | with | data | plan | test | crash | timeout
    message: str
    file: str = ""
    line: int = 0
    rule: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        rule = f" (rule {self.rule})" if self.rule else ""
        return f"{where or '<bundle>'}{rule}: {self.kind}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PolicyProblem:
        return cls(
            kind=str(doc.get("kind", "")),
            message=str(doc.get("message", "")),
            file=str(doc.get("file", "")),
            line=int(doc.get("line", 0) or 0),
            rule=str(doc.get("rule", "")),
        )


class BundleError(Exception):
    """The bundle cannot be loaded or prepared; `problems` say why."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems) or "invalid policy bundle")


@dataclass(frozen=True)
class PolicyBundle:
    modules: dict[str, str]  # relative path -> Rego source
    data: dict[str, Any]  # {"catalog": ...}
    version: str  # "pv-<12 hex>"


def is_test_module(path: str) -> bool:
    return path.endswith(TEST_SUFFIX) or TEST_DIR in Path(path).parts[:-1]


def bundle_version(modules: dict[str, str], data: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for path in sorted(modules):
        # Length-prefixed so that moving text between path and source changes the digest.
        for part in (path, modules[path]):
            blob = part.encode()
            h.update(len(blob).to_bytes(8, "big"))
            h.update(blob)
    h.update(canonical_json(data))
    return "pv-" + h.hexdigest()[:12]


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_bundle(policy_dir: Path, *, include_tests: bool = False) -> PolicyBundle:
    """Read modules and data; raises BundleError naming every unreadable file."""
    root = Path(policy_dir)
    if not root.is_dir():
        raise BundleError([PolicyProblem("data", f"policy directory {root} does not exist")])
    problems: list[PolicyProblem] = []
    modules: dict[str, str] = {}
    for path in sorted(root.rglob("*.rego")):
        rel = path.relative_to(root).as_posix()
        if is_test_module(rel) and not include_tests:
            continue
        try:
            modules[rel] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(PolicyProblem("compile", f"cannot read module: {e}", rel))
    data: dict[str, Any] = {}
    data_dir = root / "data"
    for path in sorted(data_dir.glob("*.json")) if data_dir.is_dir() else ():
        rel = path.relative_to(root).as_posix()
        try:
            data[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(PolicyProblem("data", f"cannot read data: {e}", rel))
    if not modules and not problems:
        problems.append(PolicyProblem("compile", f"no Rego modules in {root}"))
    if problems:
        raise BundleError(problems)
    return PolicyBundle(modules=modules, data=data, version=bundle_version(modules, data))
