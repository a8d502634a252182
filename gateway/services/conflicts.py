"""ConflictService: the conflicts report (R16) for the coordinating department.

Allowed by policy to administrators only (action conflicts.read, routed by
policies/conflicts.rego). The report is gateway.pool.conflicts walking the
pool; the audit record holds counts only (conflicts listed, subjects
compared), never a subject or a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from govgw.v1 import conflicts_pb2 as pb

from gateway import validation
from gateway.call import Exec, Outcome, Request
from gateway.pipeline import Parts
from gateway.plan import CONFLICTS_READ
from gateway.pool.conflicts import (
    DEFAULT_PAGE_SIZE,
    DIFFERENT,
    FORMAT_ONLY,
    MAX_PAGE_SIZE,
    SMALL_DIFFERENCE,
    Conflict,
    ConflictFinder,
    Difference,
)
from gateway.routes import Incoming, Route, rows_of
from gateway.services.common import timestamp

PURPOSE = validation.purpose("数据一致性核查")  # data consistency check (Aba 2024 art. 26)


VERDICTS = {
    FORMAT_ONLY: pb.CONFLICT_VERDICT_FORMAT_ONLY,
    SMALL_DIFFERENCE: pb.CONFLICT_VERDICT_SMALL_DIFFERENCE,
    DIFFERENT: pb.CONFLICT_VERDICT_DIFFERENT,
}


@dataclass(frozen=True)
class _Args:
    attribute: str
    page_size: int
    page_token: str


def to_proto(c: Conflict) -> pb.Conflict:
    return pb.Conflict(
        subject_hash=c.subject_hash,
        subject_masked=c.subject_masked,
        subject_kind=c.subject_kind,
        attribute=c.attribute,
        values=[
            pb.HeldValue(
                provider=v.provider,
                dataset=v.dataset,
                field=v.field,
                masked_value=v.masked_value,
                value_group=v.value_group,
                dataset_version=v.dataset_version,
                imported_at=timestamp(v.imported_at),
                imported_last=v.imported_last,
                written_at_import=v.written_at_import,
            )
            for v in c.values
        ],
        differences=[_difference(d) for d in c.differences],
    )


def _difference(d: Difference) -> pb.ValueDifference:
    return pb.ValueDifference(
        first_value=d.first_value,
        second_value=d.second_value,
        verdict=VERDICTS[d.verdict],
        equal_after=d.equal_after,
        edit_distance=d.edit_distance,
        first_length=d.first_length,
        second_length=d.second_length,
        first_positions=d.first_positions,
        second_positions=d.second_positions,
        positions_withheld=d.positions_withheld,
    )


class ConflictService:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.finder = ConflictFinder(parts.pool, parts.catalog, parts.keyring)

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(pb.DESCRIPTOR, "ConflictService")
        return [row("ListConflicts", CONFLICTS_READ, self.parse_list, self.list_conflicts)]

    def parse_list(self, request: pb.ListConflictsRequest, _in: Incoming) -> Request[_Args]:
        v = validation.Violations()
        v.check(self.finder.check_attribute, request.attribute)
        if request.page_size < 0:
            v.add("page_size", "must not be negative", "PAGE_SIZE_INVALID")
        v.raise_if_any()
        if request.page_token:
            self.finder.check_token(request.page_token, request.attribute)
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        return Request(PURPOSE, ("",), payload=_Args(request.attribute, size, request.page_token))

    def list_conflicts(self, ex: Exec[_Args]) -> Outcome[pb.ListConflictsResponse]:
        args = ex.request.payload
        page = self.finder.page(
            attribute=args.attribute,
            page_size=args.page_size,
            page_token=args.page_token,
            caller_id=ex.caller.id,
            today=ex.today,
        )
        return Outcome(
            pb.ListConflictsResponse(
                conflicts=[to_proto(c) for c in page.conflicts],
                next_page_token=page.next_page_token,
                subjects_scanned=page.subjects_scanned,
                datasets=page.datasets,
            ),
            audit={
                "attribute": args.attribute or "*",
                "conflicts": len(page.conflicts),
                "subjects_scanned": page.subjects_scanned,
                "more": bool(page.next_page_token),
            },
        )
