"""The SDK's administrators' methods as table rows: emergencies (EmergencyService,
R11) and the conflicts report (ConflictService, R16)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from govgw.v1 import conflicts_pb2, emergency_pb2

from clients.sdk import types as t
from clients.sdk.call import Call, Prepared
from clients.sdk.calls import _ts, answer, entity, enum_value, listing


# -- emergencies (EmergencyService, R11) -------------------------------------------------
def _declare_emergency(
    *,
    title: str,
    legal_basis: str,
    scope: Mapping[str, Sequence[str]],
    agencies: Sequence[str],
    purpose: str,
    ends_at: datetime | None,
) -> Prepared:
    """Declare an emergency (administrators): scope is dataset -> fields widened."""
    pb = emergency_pb2
    req = pb.DeclareEmergencyRequest(
        title=title,
        legal_basis=legal_basis,
        scope=[pb.EmergencyScope(dataset=d, fields=list(f)) for d, f in scope.items()],
        agencies=list(agencies),
        purpose=purpose,
    )
    _ts(req, "ends_at", ends_at)
    return Prepared(req)


def _end_emergency(emergency_id: str, *, reason: str) -> Prepared:
    """End an active emergency now (administrators): the ended emergency and the
    grants revoked (`revoked_grant_ids`)."""
    return Prepared(emergency_pb2.EndEmergencyRequest(emergency_id=emergency_id, reason=reason))


def _list_emergencies(*, status: t.EmergencyStatus | str = "") -> Prepared:
    """status: "", active or ended. An agency sees the emergencies naming it."""
    value = enum_value(t.EmergencyStatus, status, "status")
    return Prepared(emergency_pb2.ListEmergenciesRequest(status=value))


def _get_emergency(emergency_id: str) -> Prepared:
    return Prepared(emergency_pb2.GetEmergencyRequest(emergency_id=emergency_id))


def _sealing_list(emergency_id: str) -> Prepared:
    """Every call made under the emergency, subjects as keyed hashes (administrators)."""
    return Prepared(emergency_pb2.GetSealingListRequest(emergency_id=emergency_id))


def _seal_emergency(emergency_id: str) -> Prepared:
    """Record that what the sealing list names was sealed (administrators)."""
    return Prepared(emergency_pb2.SealEmergencyRequest(emergency_id=emergency_id))


DECLARE_EMERGENCY = Call(
    "emergency", "DeclareEmergency", _declare_emergency, entity("emergency", t.EmergencyResult)
)
END_EMERGENCY = Call("emergency", "EndEmergency", _end_emergency, answer)
LIST_EMERGENCIES = Call("emergency", "ListEmergencies", _list_emergencies, listing("emergencies"))
GET_EMERGENCY = Call(
    "emergency",
    "GetEmergency",
    _get_emergency,
    entity("emergency", t.EmergencyResult),
)
SEALING_LIST = Call("emergency", "GetSealingList", _sealing_list, answer)
SEAL_EMERGENCY = Call(
    "emergency",
    "SealEmergency",
    _seal_emergency,
    entity("emergency", t.EmergencyResult),
)


# -- the conflicts report (R16; administrators) ------------------------------------------
def _list_conflicts(*, attribute: str = "", page_size: int = 0, page_token: str = "") -> Prepared:
    """One page of the conflicts report."""
    return Prepared(
        conflicts_pb2.ListConflictsRequest(
            attribute=attribute, page_size=page_size, page_token=page_token
        )
    )


def _conflicts_report(*, attribute: str = "", page_size: int = 0) -> Prepared:
    """Every conflict, fetching page after page."""
    return _list_conflicts(attribute=attribute, page_size=page_size)


LIST_CONFLICTS = Call("conflicts", "ListConflicts", _list_conflicts, answer)
CONFLICTS_REPORT = Call(
    "conflicts", "ListConflicts", _conflicts_report, listing("conflicts"), paged=True
)
