"""The schema of a bundle's data files, checked before any rule is evaluated.

The catalog is policy data: a class without a reason, a field without a
sensitivity or a treatment naming an operator that does not exist would make
the rules decide on something that is not there. So every data file is
validated here, and every problem names the file, the line, and the JSON
path of the offending value (in PolicyProblem.rule), the way a compile error
names a file, line and rule:

    data/catalog.json:31 (rule datasets["credit.record"].class_reason): data: ...

R1: every dataset carries provider (its display name and its provider id), category, fields, format, update cycle,
share class, open class and usage requirements; a `conditional` or `none`
class carries a reason and a legal basis.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Mapping
from json.decoder import scanstring
from typing import Any

from gateway.catalog import (
    ATTRIBUTE_CONCEPTS,
    OPEN_CLASSES,
    PROVIDER_ID_RE,
    SENSITIVITIES,
    SHARE_CLASSES,
    SUBJECT_KINDS,
)
from gateway.policy.bundle import DATA_DIR, PolicyProblem

JsonPath = tuple[str | int, ...]

# Data keys the gateway supplies at evaluation time: a bundle may not shadow them.
RUNTIME_DATA = ("grants", "suspensions")
CATALOG = "catalog"
REQUIRED_TEXT = ("title", "provider", "category", "format", "update_cycle", "usage_requirements")
RESTRICTED = ("conditional", "none")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_WS = re.compile(r"[ \t\n\r]*")


# ----- where a value is: JSON path -> line ----------------------------------------------------


def json_lines(text: str) -> dict[JsonPath, int]:
    """The line each value (or object member) starts on, for text that is valid JSON."""
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    lines: dict[JsonPath, int] = {}
    decoder = json.JSONDecoder()

    def line_at(i: int) -> int:
        return bisect.bisect_left(newlines, i) + 1

    def skip(i: int) -> int:
        return _WS.match(text, i).end()  # type: ignore[union-attr]

    def value(i: int, path: JsonPath) -> int:
        i = skip(i)
        lines.setdefault(path, line_at(i))
        if text[i] == "{":
            i = skip(i + 1)
            if text[i] == "}":
                return i + 1
            while True:
                start = skip(i)
                key, i = scanstring(text, start + 1)
                lines[(*path, key)] = line_at(start)
                i = value(skip(i) + 1, (*path, key))  # past the ':'
                i = skip(i)
                if text[i] == "}":
                    return i + 1
                i += 1  # ','
        if text[i] == "[":
            i = skip(i + 1)
            if text[i] == "]":
                return i + 1
            index = 0
            while True:
                i = skip(value(i, (*path, index)))
                index += 1
                if text[i] == "]":
                    return i + 1
                i += 1
        _, end = decoder.raw_decode(text, i)
        return end

    value(0, ())
    return lines


def path_text(path: JsonPath) -> str:
    """datasets["population.basic"].fields[2].share.operator"""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


class _Report:
    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = json_lines(text)
        self.problems: list[PolicyProblem] = []

    def add(self, path: JsonPath, message: str) -> None:
        # The value's own line, else its nearest enclosing one (a missing key's object).
        p = path
        while p and p not in self.lines:
            p = p[:-1]
        self.problems.append(
            PolicyProblem("data", message, self.file, self.lines.get(p, 1), path_text(path))
        )


# ----- the checks -------------------------------------------------------------------------------


def data_problems(
    files: Mapping[str, bytes],
    *,
    operators: Callable[[], list[str]] | None = None,
    predicates: Callable[[], list[str]] | None = None,
) -> list[PolicyProblem]:
    """Schema problems of every data file in a bundle (files as `bundle.files`)."""
    problems: list[PolicyProblem] = []
    data_files = {p: b for p, b in files.items() if p.startswith(DATA_DIR + "/")}
    if f"{DATA_DIR}/{CATALOG}.json" not in data_files:
        problems.append(PolicyProblem("data", "the bundle has no data/catalog.json"))
    for path, blob in sorted(data_files.items()):
        try:
            text = blob.decode("utf-8")
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(PolicyProblem("data", f"not JSON: {e}", path, getattr(e, "lineno", 0)))
            continue
        report = _Report(path, text)
        stem = path[len(DATA_DIR) + 1 : -len(".json")]
        if stem in RUNTIME_DATA:
            report.add((), f"data.{stem} is supplied by the gateway at run time; rename the file")
        elif not isinstance(doc, dict):
            report.add((), "a data file must hold a JSON object")
        elif stem == CATALOG:
            _catalog(doc, report, operators or _operator_names, predicates or _predicate_names)
        problems.extend(report.problems)
    return problems


def _operator_names() -> list[str]:
    from masking import operator_names

    return operator_names()


def _predicate_names() -> list[str]:
    from gateway.predicates import predicate_names

    return predicate_names()


def _catalog(
    doc: dict[str, Any],
    r: _Report,
    operators: Callable[[], list[str]],
    predicates: Callable[[], list[str]],
) -> None:
    if "version" in doc and not isinstance(doc["version"], str):
        r.add(("version",), "version must be a string")
    datasets = doc.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        r.add(("datasets",), "datasets must be a non-empty object")
        return
    known_ops = set(operators())
    known_predicates = set(predicates())
    described = _conflicts(doc.get("conflicts"), r, known_ops)
    providers: dict[str, str] = {}
    for name, ds in datasets.items():
        at: JsonPath = ("datasets", name)
        if not isinstance(ds, dict):
            r.add(at, "a dataset must be an object")
            continue
        _dataset(ds, at, r, known_ops, known_predicates)
        _provider_id(ds, at, r, providers)
        _attributes(ds, at, r, described)


def _provider_id(ds: dict[str, Any], at: JsonPath, r: _Report, seen: dict[str, str]) -> None:
    """The provider id callers are bound by: present, well formed, and one department
    per id (an id shared by two display names is a copy-paste slip that would let one
    department act on the other's datasets)."""
    pid = ds.get("provider_id")
    if not isinstance(pid, str) or not PROVIDER_ID_RE.fullmatch(pid):
        r.add(
            (*at, "provider_id"),
            "provider_id is required: 2-63 characters of a-z, 0-9, '.', '_', '-' (R1)",
        )
        return
    name = _text(ds, "provider")
    if seen.setdefault(pid, name) != name:
        r.add(
            (*at, "provider_id"),
            f"provider_id {pid} already names provider {seen[pid]}, not {name}",
        )


def _conflicts(doc: Any, r: _Report, ops: set[str]) -> set[str]:
    """Check the `conflicts` section (R16); returns the attribute concepts it describes."""
    if doc is None:
        return set()
    at: JsonPath = ("conflicts",)
    if not isinstance(doc, dict):
        r.add(at, "conflicts must be an object")
        return set()
    described: set[str] = set()
    concepts = doc.get("attributes", {})
    if not isinstance(concepts, dict):
        r.add((*at, "attributes"), "attributes must be an object")
        concepts = {}
    for name, c in concepts.items():
        cat: JsonPath = (*at, "attributes", name)
        if name not in ATTRIBUTE_CONCEPTS:
            r.add(cat, f"attribute concept {name} does not exist ({', '.join(ATTRIBUTE_CONCEPTS)})")
            continue
        if not isinstance(c, dict):
            r.add(cat, "an attribute concept must be an object")
            continue
        described.add(name)
        if not _text(c, "title"):
            r.add((*cat, "title"), "title is required")
        if "report" not in c:
            r.add((*cat, "report"), "report is required: the treatment values are shown through")
        elif _treatment(c["report"], (*cat, "report"), r, ops):
            _not_raw(c["report"], ATTRIBUTE_CONCEPTS[name][0], (*cat, "report"), r)
    keys = doc.get("subject_keys", {})
    if not isinstance(keys, dict):
        r.add((*at, "subject_keys"), "subject_keys must be an object")
        keys = {}
    for kind, t in keys.items():
        kat: JsonPath = (*at, "subject_keys", kind)
        if kind not in SUBJECT_KINDS:
            r.add(kat, f"subject kind {kind} does not exist ({', '.join(SUBJECT_KINDS)})")
        elif _treatment(t, kat, r, ops):
            _not_raw(t, kind, kat, r)
    return described


def _not_raw(t: dict[str, Any], subject_kind: str, at: JsonPath, r: _Report) -> None:
    if subject_kind == "person" and t["operator"] == "keep":
        r.add(
            (*at, "operator"),
            "the conflicts report never shows a person's raw value: name a masking operator",
        )


def _attributes(ds: dict[str, Any], at: JsonPath, r: _Report, described: set[str]) -> None:
    """Each field's `attribute` names a described concept of the dataset's subject kind, once."""
    fields = ds.get("fields")
    if not isinstance(fields, list):
        return
    holder: dict[str, str] = {}
    for i, f in enumerate(fields):
        if not isinstance(f, dict):
            continue
        fat: JsonPath = (*at, "fields", i)
        if "derived_from_subject" in f and not isinstance(f["derived_from_subject"], bool):
            r.add((*fat, "derived_from_subject"), "derived_from_subject must be true or false")
        if "attribute" not in f:
            continue
        concept = f["attribute"]
        aat: JsonPath = (*fat, "attribute")
        if not isinstance(concept, str) or concept not in ATTRIBUTE_CONCEPTS:
            r.add(
                aat,
                f"attribute concept {concept} does not exist ({', '.join(ATTRIBUTE_CONCEPTS)})",
            )
        elif concept not in described:
            r.add(aat, f"attribute concept {concept} is not described in conflicts.attributes")
        elif ATTRIBUTE_CONCEPTS[concept][0] != ds.get("subject_kind"):
            r.add(
                aat,
                f"attribute concept {concept} is about a {ATTRIBUTE_CONCEPTS[concept][0]},"
                f" the dataset's subjects are {ds.get('subject_kind')}",
            )
        elif concept in holder:
            r.add(
                aat,
                f"attribute concept {concept} is already held by field {holder[concept]}:"
                " one field per concept",
            )
        else:
            holder[concept] = str(f.get("name"))


def _text(ds: Mapping[str, Any], key: str) -> str:
    v = ds.get(key)
    return v.strip() if isinstance(v, str) else ""


def _dataset(
    ds: dict[str, Any], at: JsonPath, r: _Report, ops: set[str], predicates: set[str]
) -> None:
    for key in REQUIRED_TEXT:
        if not _text(ds, key):
            r.add((*at, key), f"{key} is required (R1)")
    for key, allowed in (
        ("share_class", SHARE_CLASSES),
        ("open_class", OPEN_CLASSES),
        ("sensitivity", SENSITIVITIES),
        ("subject_kind", SUBJECT_KINDS),
    ):
        if ds.get(key) not in allowed:
            r.add((*at, key), f"{key} must be one of {', '.join(allowed)}")
    restricted = [k for k in ("share_class", "open_class") if ds.get(k) in RESTRICTED]
    if restricted:
        why = " and ".join(f"{k} {ds[k]}" for k in restricted)
        for key in ("class_reason", "legal_basis"):
            if not _text(ds, key):
                r.add((*at, key), f"{key} is required because {why} (R1)")
    if "regional" in ds and not isinstance(ds["regional"], bool):
        r.add((*at, "regional"), "regional must be true or false")
    named = ds.get("predicates", [])
    if not isinstance(named, list) or not all(isinstance(p, str) for p in named):
        r.add((*at, "predicates"), "predicates must be a list of names")
    else:
        for i, p in enumerate(named):
            if p not in predicates:
                r.add((*at, "predicates", i), f"predicate {p} does not exist")
    fields = ds.get("fields")
    if not isinstance(fields, list) or not fields:
        r.add((*at, "fields"), "fields must be a non-empty list (R1)")
        return
    seen: set[str] = set()
    for i, f in enumerate(fields):
        fat: JsonPath = (*at, "fields", i)
        if not isinstance(f, dict):
            r.add(fat, "a field must be an object")
            continue
        name = f.get("name")
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            r.add((*fat, "name"), "name must be lower_snake_case")
        elif name in seen:
            r.add((*fat, "name"), f"field {name} is listed twice")
        else:
            seen.add(name)
        if f.get("sensitivity") not in SENSITIVITIES:
            r.add((*fat, "sensitivity"), f"sensitivity must be one of {', '.join(SENSITIVITIES)}")
        for side in ("share", "open"):
            if side in f:
                _treatment(f[side], (*fat, side), r, ops)
    if ds.get("subject_field") not in seen:
        r.add((*at, "subject_field"), "subject_field must name one of the dataset's fields")


def _treatment(t: Any, at: JsonPath, r: _Report, ops: set[str]) -> bool:
    """Add the treatment's problems; True when it has none."""
    if not isinstance(t, dict) or not isinstance(t.get("operator"), str):
        r.add(at, "a treatment must be an object with an operator")
        return False
    op = t["operator"]
    if op not in ops:
        r.add((*at, "operator"), f"masking operator {op} does not exist ({', '.join(sorted(ops))})")
        return False
    params = t.get("params", {})
    if not isinstance(params, dict):
        r.add((*at, "params"), "params must be an object")
        return False
    from masking import MaskingError, get_operator

    try:
        get_operator(op).check_params(params)
    except MaskingError as e:
        r.add((*at, "params", e.param) if e.param else (*at, "params"), str(e))
        return False
    return True
