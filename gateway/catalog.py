"""The catalog (目录): datasets, their fields, classes, provider and legal basis.

The catalog is policy data: it lives in `policies/data/catalog.json`, is
loaded into the Rego engine as `data.catalog`, and is read here for the
field lists the pool validates against and the catalog RPCs publish.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "policies" / "data" / "catalog.json"

SHARE_CLASSES = ("unconditional", "conditional", "none")
OPEN_CLASSES = ("unconditional", "conditional", "none")
SENSITIVITIES = ("public", "internal", "secret")
SUBJECT_KINDS = ("person", "legal_entity")


@dataclass(frozen=True)
class Treatment:
    """A masking operator and its parameters, as the catalog or a plan names it."""

    operator: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Field:
    name: str
    title: str
    type: str  # "string", "date", "date?" (optional), "id_number", "uscc", "phone", "enum:a,b", ...
    sensitivity: str
    pii: str = ""  # kind of personal data, if any: id_number, name, phone, address, birth_date
    free_text: bool = False
    share: Treatment = Treatment("redact")
    open: Treatment = Treatment("redact")

    @property
    def optional(self) -> bool:
        return self.type.endswith("?")

    @property
    def base_type(self) -> str:
        return self.type.rstrip("?")


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    description: str
    provider: str
    category: str
    format: str
    update_cycle: str
    subject_kind: str
    subject_field: str
    share_class: str
    open_class: str
    sensitivity: str
    class_reason: str
    legal_basis: str
    usage_requirements: str
    regional: bool
    predicates: tuple[str, ...]
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class Catalog:
    version: str
    datasets: dict[str, Dataset]
    raw: dict[str, Any]  # the document as loaded, handed to the policy engine as data.catalog

    def get(self, name: str) -> Dataset | None:
        return self.datasets.get(name)

    def for_predicate(self, predicate: str) -> Dataset | None:
        return next((d for d in self.datasets.values() if predicate in d.predicates), None)


def _treatment(doc: dict[str, Any] | None) -> Treatment:
    if not doc:
        return Treatment("redact")
    return Treatment(doc["operator"], dict(doc.get("params", {})))


def parse(doc: dict[str, Any]) -> Catalog:
    datasets = {}
    for name, d in doc["datasets"].items():
        fields = tuple(
            Field(
                name=f["name"],
                title=f.get("title", ""),
                type=f.get("type", "string"),
                sensitivity=f["sensitivity"],
                pii=f.get("pii", ""),
                free_text=bool(f.get("free_text", False)),
                share=_treatment(f.get("share")),
                open=_treatment(f.get("open")),
            )
            for f in d["fields"]
        )
        datasets[name] = Dataset(
            name=name,
            title=d.get("title", ""),
            description=d.get("description", ""),
            provider=d["provider"],
            category=d.get("category", ""),
            format=d.get("format", "JSON"),
            update_cycle=d.get("update_cycle", ""),
            subject_kind=d["subject_kind"],
            subject_field=d["subject_field"],
            share_class=d["share_class"],
            open_class=d["open_class"],
            sensitivity=d["sensitivity"],
            class_reason=d.get("class_reason", ""),
            legal_basis=d.get("legal_basis", ""),
            usage_requirements=d.get("usage_requirements", ""),
            regional=bool(d.get("regional", False)),
            predicates=tuple(d.get("predicates", ())),
            fields=fields,
        )
    return Catalog(version=str(doc.get("version", "")), datasets=datasets, raw=doc)


def load(path: Path = DEFAULT_CATALOG) -> Catalog:
    return parse(json.loads(Path(path).read_text(encoding="utf-8")))
