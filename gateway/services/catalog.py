"""CatalogService: what the pool holds, its classes, provider and legal basis (R1, R2).

What it publishes is the catalog of the policy version served (the version's
data/catalog.json, swapped with its engine), and every response names that
version, so a developer sees a class or masking change the moment it decides.
"""

from __future__ import annotations

import base64
from typing import Any

from govgw.v1 import catalog_pb2, common_pb2

from gateway import validation
from gateway.call import Exec, Outcome, Request
from gateway.catalog import Catalog, Dataset, ServedCatalog, Treatment
from gateway.errors import invalid, not_found
from gateway.pipeline import Parts
from gateway.plan import CATALOG_READ
from gateway.routes import Incoming, Route, rows_of

DEFAULT_PAGE = 50
MAX_PAGE = 200
# ListDatasets' payload: the offset of the page and its size.
Page = tuple[int, int]
# Catalog reads are not about a person; a purpose is still recorded, but a
# browsing tool need not invent one.
DEFAULT_PURPOSE = "目录浏览"

_SHARE = {
    "unconditional": catalog_pb2.SHARE_CLASS_UNCONDITIONAL,
    "conditional": catalog_pb2.SHARE_CLASS_CONDITIONAL,
    "none": catalog_pb2.SHARE_CLASS_NONE,
}
_OPEN = {
    "unconditional": catalog_pb2.OPEN_CLASS_UNCONDITIONAL,
    "conditional": catalog_pb2.OPEN_CLASS_CONDITIONAL,
    "none": catalog_pb2.OPEN_CLASS_NONE,
}
_SENSITIVITY = {
    "public": catalog_pb2.SENSITIVITY_PUBLIC,
    "internal": catalog_pb2.SENSITIVITY_INTERNAL,
    "secret": catalog_pb2.SENSITIVITY_SECRET,
}
_SUBJECT = {
    "person": common_pb2.SUBJECT_KIND_PERSON,
    "legal_entity": common_pb2.SUBJECT_KIND_LEGAL_ENTITY,
}


def _masking(t: Treatment) -> catalog_pb2.Masking:
    m = catalog_pb2.Masking(operator=t.operator)
    if t.params:
        m.params.update(t.params)
    return m


def dataset_message(ds: Dataset, version: str, policy_version: str = "") -> catalog_pb2.Dataset:
    return catalog_pb2.Dataset(
        name=ds.name,
        title=ds.title,
        description=ds.description,
        provider=ds.provider,
        category=ds.category,
        format=ds.format,
        update_cycle=ds.update_cycle,
        subject_kind=_SUBJECT[ds.subject_kind],
        share_class=_SHARE[ds.share_class],
        open_class=_OPEN[ds.open_class],
        sensitivity=_SENSITIVITY[ds.sensitivity],
        class_reason=ds.class_reason,
        legal_basis=ds.legal_basis,
        usage_requirements=ds.usage_requirements,
        fields=[
            catalog_pb2.Field(
                name=f.name,
                title=f.title,
                type=f.type,
                sensitivity=_SENSITIVITY[f.sensitivity],
                attribute=f.attribute,
                derived_from_subject=f.derived_from_subject,
                share_masking=_masking(f.share),
                open_masking=_masking(f.open),
            )
            for f in ds.fields
        ],
        predicates=list(ds.predicates),
        version=version,
        policy_version=policy_version,
    )


def _policy_version(catalog: Catalog) -> str:
    return catalog.policy_version if isinstance(catalog, ServedCatalog) else ""


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _offset(token: str) -> int:
    if not token:
        return 0
    try:
        kind, _, n = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "o" or not n.isdigit():
            raise ValueError
        return int(n)
    except ValueError as e:
        raise invalid(
            "page_token", "is not a token this service issued", "PAGE_TOKEN_INVALID"
        ) from e


class CatalogService:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(catalog_pb2.DESCRIPTOR, "CatalogService")
        return [
            row("ListDatasets", CATALOG_READ, self.parse_list, self.list_datasets),
            row("GetDataset", CATALOG_READ, self.parse_get, self.get_dataset),
        ]

    def parse_list(self, request: catalog_pb2.ListDatasetsRequest, _in: Incoming) -> Request[Page]:
        v = validation.Violations()
        purpose = v.check(validation.purpose, request.purpose or DEFAULT_PURPOSE)
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            v.add("page_size", f"must be 0 to {MAX_PAGE}", "PAGE_SIZE_INVALID")
        offset = v.check(_offset, request.page_token)
        v.raise_if_any()
        return Request(
            purpose or "", ("",), payload=(offset or 0, request.page_size or DEFAULT_PAGE)
        )

    def list_datasets(self, ex: Exec[Page]) -> Outcome[catalog_pb2.ListDatasetsResponse]:
        offset, size = ex.request.payload
        # The call pinned the served version (Pipeline.serve): one document throughout.
        catalog = self.parts.catalog
        policy_version = _policy_version(catalog)
        names = sorted(catalog.datasets)
        page = names[offset : offset + size]
        more = offset + size < len(names)
        return Outcome(
            catalog_pb2.ListDatasetsResponse(
                datasets=[
                    dataset_message(
                        catalog.datasets[n], self.parts.pool.dataset_version(n), policy_version
                    )
                    for n in page
                ],
                next_page_token=_page_token(offset + size) if more else "",
                policy_version=policy_version,
            )
        )

    def parse_get(self, request: catalog_pb2.GetDatasetRequest, _in: Incoming) -> Request[str]:
        v = validation.Violations()
        purpose = v.check(validation.purpose, request.purpose or DEFAULT_PURPOSE)
        if not request.name:
            v.add("name", "is required", "DATASET_MISSING")
        v.raise_if_any()
        return Request(purpose or "", ("",), payload=request.name)

    def get_dataset(self, ex: Exec[str]) -> Outcome[catalog_pb2.GetDatasetResponse]:
        catalog = self.parts.catalog
        policy_version = _policy_version(catalog)
        ds = catalog.get(ex.request.payload)
        if ds is None:
            # The catalog is published; saying a dataset does not exist reveals nothing.
            raise not_found("DATASET_NOT_FOUND", "no dataset of that name in the catalog")
        return Outcome(
            catalog_pb2.GetDatasetResponse(
                dataset=dataset_message(
                    ds, self.parts.pool.dataset_version(ds.name), policy_version
                ),
                policy_version=policy_version,
            )
        )
