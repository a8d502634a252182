"""One call as the route table's functions see it: the typed request `parse`
returns, what `handle` gets (`Exec`) and what it gives back (`Outcome`).

Kept apart from the pipeline that runs them and the table that names them,
so both import it and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

from gateway.callers import Caller
from gateway.plan import Plan

T = TypeVar("T")
P = TypeVar("P")


@dataclass(frozen=True)
class Request(Generic[P]):
    """A validated request: everything the pipeline needs to decide and audit."""

    purpose: str
    datasets: tuple[str, ...]  # one plan is decided per dataset
    subjects: tuple[str, ...] = ()  # normalized subject keys; audited only as keyed hashes
    fields: tuple[str, ...] = ()  # requested field names (validated against the catalog)
    predicates: tuple[str, ...] = ()  # requested predicate names
    payload: P = None  # type: ignore[assignment]  # the RPC's own parsed arguments


@dataclass
class Outcome(Generic[T]):
    response: T
    answer: str = ""  # MATCH / NO_MATCH, recorded in the audit trail
    # For the enumeration monitor: per subject key (or one for all), was the answer
    # a miss -- NO_MATCH, no record, not in the base dataset? Routes that take
    # subject keys set it; the pipeline reports it (gateway.oracle).
    misses: tuple[bool, ...] = (False,)
    receipt_id: str = ""
    # A receipt made but not yet signed (gateway.receipts.PendingReceipt): the
    # pipeline has it signed with its audit group commit, once the record is
    # durable, and sets it on `response.receipt`. Not for state-changing routes
    # (their stored replay answer is taken before the audit).
    receipt: Any = None
    # What a state-changing call did (application id, grant id, transition),
    # added to its audit record; ids and codes only, never personal data.
    audit: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Exec(Generic[P]):
    """What `handle` gets: the authenticated caller, the plans and the request."""

    caller: Caller
    plans: dict[str, Plan]
    request: Request[P]
    request_id: str
    now: datetime

    @property
    def today(self) -> date:
        return self.now.astimezone(UTC).date()

    @property
    def policy_version(self) -> str:
        return next(iter(self.plans.values())).policy_version if self.plans else ""


@dataclass(frozen=True)
class Incoming:
    """What `parse` may use besides the message: the authenticated caller and the metadata."""

    caller: Caller
    metadata: Mapping[str, str]
