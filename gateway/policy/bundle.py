"""Policy bundles: the Rego modules and data the engine is prepared from.

A bundle is read from a policy directory (`policies/`): every `*.rego` file
is a module, every `data/*.json` file is data under its stem (`catalog.json`
becomes `data.catalog`). Grants are not bundle data: they change while the
gateway runs and reach the engine at evaluation time.

The version is a content address over every file of the bundle (serving
modules, test modules and data files, byte for byte), so two gateways serving
the same files report the same version, and any edit, even to a test or to
the layout of a data file, changes it. `digest` is the full SHA-256 the
version abbreviates: signatures cover the digest, never the short version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    digest: str = ""  # full SHA-256 hex of every file (tests included)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)  # every file, as read


DATA_DIR = "data"
MAX_PATH, MAX_NAME = 200, 100  # well inside every file system's limits


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


def files_digest(files: Mapping[str, bytes]) -> str:
    """SHA-256 over every (path, content), length-prefixed so nothing can move between them."""
    h = hashlib.sha256()
    for path in sorted(files):
        for blob in (path.encode(), files[path]):
            h.update(len(blob).to_bytes(8, "big"))
            h.update(blob)
    return h.hexdigest()


def version_of(digest: str) -> str:
    return "pv-" + digest[:12]


def is_bundle_path(path: str) -> bool:
    """A path that belongs in a bundle: a Rego module anywhere, or data/<name>.json."""
    if not path or len(path) > MAX_PATH or any(ord(c) < 32 or c == "\x7f" for c in path):
        return False
    parts = path.split("/")  # not Path(path).parts: that would normalize "./x" and "a//b" away
    if any(p in ("", ".", "..") or "\\" in p or len(p) > MAX_NAME for p in parts):
        return False
    if any(p.startswith(".") for p in parts):
        return False
    if path.endswith(".rego"):
        return True
    return len(parts) == 2 and parts[0] == DATA_DIR and parts[1].endswith(".json")


def read_policy_files(policy_dir: Path) -> dict[str, bytes]:
    """Every file of the bundle in a directory, by relative POSIX path."""
    root = Path(policy_dir)
    if not root.is_dir():
        raise BundleError([PolicyProblem("data", f"policy directory {root} does not exist")])
    files: dict[str, bytes] = {}
    problems = []
    candidates = [*root.rglob("*.rego"), *sorted((root / DATA_DIR).glob("*.json"))]
    for path in sorted(set(candidates)):
        rel = path.relative_to(root).as_posix()
        if not is_bundle_path(rel) or not path.is_file():
            continue
        try:
            files[rel] = path.read_bytes()
        except OSError as e:
            problems.append(PolicyProblem("compile", f"cannot read file: {e}", rel))
    if problems:
        raise BundleError(problems)
    return files


def bundle_from_files(files: Mapping[str, bytes], *, include_tests: bool = False) -> PolicyBundle:
    """Parse a bundle's files; raises BundleError naming every unreadable one."""
    problems: list[PolicyProblem] = []
    modules: dict[str, str] = {}
    data: dict[str, Any] = {}
    for rel in sorted(files):
        blob = files[rel]
        if rel.endswith(".rego"):
            try:
                source = blob.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.append(PolicyProblem("compile", f"cannot read module: {e}", rel))
                continue
            if include_tests or not is_test_module(rel):
                modules[rel] = source
        else:
            try:
                data[Path(rel).stem] = json.loads(blob.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                line = getattr(e, "lineno", 0)
                problems.append(PolicyProblem("data", f"cannot read data: {e}", rel, line))
    if not any(rel.endswith(".rego") and not is_test_module(rel) for rel in files) and not problems:
        problems.append(PolicyProblem("compile", "no Rego modules in the bundle"))
    if problems:
        raise BundleError(problems)
    digest = files_digest(files)
    return PolicyBundle(
        modules=modules, data=data, version=version_of(digest), digest=digest, files=dict(files)
    )


def load_bundle(policy_dir: Path, *, include_tests: bool = False) -> PolicyBundle:
    """Read modules and data; raises BundleError naming every unreadable file."""
    return bundle_from_files(read_policy_files(policy_dir), include_tests=include_tests)
