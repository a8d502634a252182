"""The catalog (目录): datasets, their fields, classes, provider and legal basis.

The catalog is policy data: it lives in `policies/data/catalog.json`, is
loaded into the Rego engine as `data.catalog`, and is read here for the
field lists the pool validates against and the catalog RPCs publish.

There is one catalog: the one in the policy version a gateway serves. A
running gateway reads it through a `ServedCatalog`, swapped together with
the policy engine when another version is activated; offline commands read
the active version's (`gateway.policy.serving.data_dir_catalog`). The
catalog shipped with the gateway (`DEFAULT_CATALOG`) is what is served
before the first activation, and its datasets and fields are what the pool
holds: a policy version may change classes, treatments, reasons and legal
bases, never those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "policies" / "data" / "catalog.json"

SHARE_CLASSES = ("unconditional", "conditional", "none")
OPEN_CLASSES = ("unconditional", "conditional", "none")
SENSITIVITIES = ("public", "internal", "secret")
SUBJECT_KINDS = ("person", "legal_entity")
# A provider (the department that supplies a dataset) is named by an id, not by
# its display name: callers are bound to the providers they represent by this
# id (gateway.callers), so that no department is taken for another because
# their names look alike (某县民政局 is not 县民政局).
PROVIDER_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,62}")  # use fullmatch
# Attribute concepts (R16): what a field holds, so that two providers' fields
# of the same subject can be compared. The kind picks the normalization
# (gateway.pool.conflicts); the subject kind is the only one a concept may
# appear in. Code, not catalog data, because each kind needs its normalizer.
ATTRIBUTE_CONCEPTS: dict[str, tuple[str, str]] = {
    "person.name": ("person", "name"),
    "person.birth_date": ("person", "date"),
    "person.address": ("person", "address"),
    "entity.name": ("legal_entity", "name"),
    "entity.address": ("legal_entity", "address"),
}


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
    attribute: str = ""  # the shared attribute concept it holds, e.g. person.name (R16)
    # The value is encoded in the subject key (birth date and sex in an ID
    # number, GB 11643), so ingestion rejects a row where they disagree.
    derived_from_subject: bool = False
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
    provider: str  # the providing department's display name (Provenance.source_department)
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
    # The providing department's id; the callers bound to it act as the provider.
    # Empty (a catalog from before provider ids): nobody acts as its provider.
    provider_id: str = ""

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class Concept:
    """An attribute concept as the catalog's `conflicts` section describes it."""

    name: str
    title: str
    subject_kind: str
    kind: str  # name, date or address: how values are normalized before comparing
    report: Treatment  # how a value is shown in the conflicts report (never keep for persons)


@dataclass(frozen=True)
class CatalogData:
    """One catalog document, parsed: what a `Catalog` reads from."""

    version: str
    datasets: dict[str, Dataset]
    raw: dict[str, Any]  # the document as loaded, handed to the policy engine as data.catalog
    concepts: dict[str, Concept] = field(default_factory=dict)
    # How the conflicts report shows a subject key, per subject kind.
    subject_key_report: dict[str, Treatment] = field(default_factory=dict)


class Catalog:
    """The catalog as its readers see it (pool, validation, stores, services).

    A plain Catalog reads one document for ever; a `ServedCatalog` reads the
    document of the policy version its process serves, so every holder of it
    follows an activation without being rebuilt.
    """

    def __init__(
        self,
        version: str,
        datasets: dict[str, Dataset],
        raw: dict[str, Any],
        concepts: dict[str, Concept] | None = None,
        subject_key_report: dict[str, Treatment] | None = None,
    ) -> None:
        self._fixed = CatalogData(version, datasets, raw, concepts or {}, subject_key_report or {})

    def data(self) -> CatalogData:
        return self._fixed

    @property
    def version(self) -> str:
        return self.data().version

    @property
    def datasets(self) -> dict[str, Dataset]:
        return self.data().datasets

    @property
    def raw(self) -> dict[str, Any]:
        return self.data().raw

    @property
    def concepts(self) -> dict[str, Concept]:
        return self.data().concepts

    @property
    def subject_key_report(self) -> dict[str, Treatment]:
        return self.data().subject_key_report

    def get(self, name: str) -> Dataset | None:
        return self.data().datasets.get(name)

    def attribute_fields(self, concept: str) -> list[tuple[Dataset, Field]]:
        """Every (dataset, field) holding `concept`, in catalog order."""
        return [
            (d, f)
            for d in self.data().datasets.values()
            for f in d.fields
            if f.attribute == concept
        ]

    def provider_ids(self) -> dict[str, str]:
        """Provider id -> its display name, for every provider the catalog names."""
        return {d.provider_id: d.provider for d in self.data().datasets.values() if d.provider_id}

    def for_predicate(self, predicate: str) -> Dataset | None:
        return next((d for d in self.data().datasets.values() if predicate in d.predicates), None)

    def structure(self) -> dict[str, tuple[str, ...]]:
        """Dataset -> field names: what the pool holds, which no policy version may change."""
        return {n: d.field_names for n, d in self.data().datasets.items()}


# The catalog a request has pinned (gateway.pipeline): every read it makes, before
# and after its awaits, is of the version its plans were decided by.
_PINNED: ContextVar[tuple[ServedCatalog, CatalogData, str] | None] = ContextVar(
    "govgw_pinned_catalog", default=None
)


class ServedCatalog(Catalog):
    """The catalog of the policy version this process serves (R1: one catalog).

    The policy bundle carries data/catalog.json; the Decider swaps this
    catalog in the same step as the engine (gateway.policy.decider), so the
    catalog RPCs, validation, provider checks and the conflicts report read
    the catalog the policy decides with. One reference store: a reader sees
    the old document or the new one, never a mix.
    """

    def __init__(
        self,
        catalog: Catalog,
        policy_version: str,
        *,
        structure: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self._fixed = catalog.data()
        self._current: tuple[CatalogData, str] = (catalog.data(), policy_version)
        # What the pool holds (the gateway release's catalog): a version whose
        # catalog names other datasets or fields is never swapped in.
        self.pool_structure = structure if structure is not None else catalog.structure()

    def _state(self) -> tuple[CatalogData, str]:
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self:
            return pinned[1], pinned[2]
        return self._current

    def data(self) -> CatalogData:
        return self._state()[0]

    @property
    def policy_version(self) -> str:
        """The policy version whose bundle this catalog is read from."""
        return self._state()[1]

    def snapshot(self) -> Catalog:
        """The catalog as served now, fixed."""
        d = self.data()
        return Catalog(d.version, d.datasets, d.raw, d.concepts, d.subject_key_report)

    def swap(self, catalog: Catalog, policy_version: str) -> None:
        self._current = (catalog.data(), policy_version)

    def pin(self) -> Token[tuple[ServedCatalog, CatalogData, str] | None]:
        """Read the catalog served now for the rest of this context (one request)."""
        data, version = self._current
        return _PINNED.set((self, data, version))

    @staticmethod
    def unpin(token: Token[tuple[ServedCatalog, CatalogData, str] | None]) -> None:
        _PINNED.reset(token)


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
                attribute=str(f.get("attribute", "")),
                derived_from_subject=bool(f.get("derived_from_subject", False)),
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
            provider_id=str(d.get("provider_id", "")),
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
    conflicts = doc.get("conflicts") or {}
    concepts = {
        name: Concept(
            name=name,
            title=str(c.get("title", "")),
            subject_kind=ATTRIBUTE_CONCEPTS[name][0],
            kind=ATTRIBUTE_CONCEPTS[name][1],
            report=_treatment(c.get("report")),
        )
        for name, c in (conflicts.get("attributes") or {}).items()
        if name in ATTRIBUTE_CONCEPTS
    }
    subject_keys = {
        kind: _treatment(t) for kind, t in (conflicts.get("subject_keys") or {}).items()
    }
    return Catalog(
        version=str(doc.get("version", "")),
        datasets=datasets,
        raw=doc,
        concepts=concepts,
        subject_key_report=subject_keys,
    )


def load(path: Path = DEFAULT_CATALOG) -> Catalog:
    return parse(json.loads(Path(path).read_text(encoding="utf-8")))


class CatalogMismatch(ValueError):
    """A policy bundle's catalog cannot be served: unreadable, or not what the pool holds."""


def from_bundle_data(
    data: Mapping[str, Any], structure: dict[str, tuple[str, ...]] | None = None
) -> Catalog:
    """The catalog a policy bundle carries (its data/catalog.json), checked against
    the pool's datasets and fields when `structure` is given."""
    doc = data.get("catalog")
    if not isinstance(doc, dict):
        raise CatalogMismatch("the bundle has no data/catalog.json")
    try:
        catalog = parse(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CatalogMismatch(f"data/catalog.json cannot be read: {type(e).__name__} {e}") from None
    if structure is not None:
        problems = structure_differences(catalog, structure)
        if problems:
            raise CatalogMismatch("data/catalog.json: " + "; ".join(problems[:5]))
    return catalog


def structure_differences(candidate: Catalog, served: dict[str, tuple[str, ...]]) -> list[str]:
    """How `candidate` differs from the datasets and fields the pool holds (empty: it does not)."""
    have = candidate.structure()
    out = [f"dataset {n} is missing; the pool holds it" for n in sorted(served.keys() - have)]
    out += [f"dataset {n} is not in the pool" for n in sorted(have.keys() - served.keys())]
    for n in sorted(served.keys() & have.keys()):
        out += [
            f"field {f} of {n} differs from the pool's fields"
            for f in sorted(set(served[n]) ^ set(have[n]))
        ]
    return out
