"""Emergency mode (R11): time-boxed wider access, then sealing.

Aba 2024 art. 21 lets public bodies obtain data from other units when an
emergency (突发事件) requires it; Aba 2021 art. 32 asks the bodies handling a
natural disaster, accident, public-health or social-security event to provide
the related data promptly. Both presuppose that the wider access ends with the
emergency, and that personal data obtained under it is then sealed or
destroyed and the access shut.

An administrator declares an emergency: title, legal basis, scope (datasets
and, per dataset, the fields that may be widened), designated agencies, the
purpose, and an end time. The declaration creates one grant per agency and
dataset in the `GrantStore` (carrying `emergency_id`, expiring at the end
time), so the plan cache (keyed by the grants' version) and plan expiry work
for emergencies as for any grant. The decider also puts the active emergencies
into the policy input (`input.emergencies`): policies/grants.rego uses an
emergency grant only while its emergency is active, names the caller and
scopes the dataset, and its plan carries the emergency id into the audit
record of every call made under it.

At the end, by `EndEmergency` or because the end time passed (a periodic
server task, and on demand when emergencies are listed), the emergency's
grants are revoked (reason EMERGENCY_ENDED). The sealing list, read from the
audit trail, names every call made under the emergency, with subjects only as
keyed hashes; an administrator then records that it was sealed.

Scope rules: only datasets whose share class is `conditional`. Unconditional
data needs no emergency; data classed `none` (不予共享) carries a legal basis
for refusal that an administrator's declaration does not override. `secret`
fields (Guiyang art. 9) and fields whose share treatment redacts them never
leave, emergency or not, so they cannot be put in scope.

The store is one JSON file (`emergencies.json`) with the same mechanics as the
grants file: flock, atomic replace, stat-based refresh, so every worker process
sees a change on its next look. With a database URL it is a row of PostgreSQL's
`documents` table as the grants are, reloaded in memory when announced, so a
declaration or an end through any node applies on every node within 1 s.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from gateway import validation
from gateway.access.applications import text
from gateway.audit import read_records
from gateway.audit.index import BaseAuditIndex
from gateway.callers import Caller
from gateway.catalog import Catalog
from gateway.errors import GovgwError
from gateway.grants import REVOKED, GrantStore, JsonListStore
from gateway.storage import Storage

ACTIVE, ENDED = "active", "ended"
# Emergency measures are temporary by nature: they must stop once the emergency
# is handled. Thirty days is long enough for the acute phase of a disaster or
# epidemic, short enough that wide access cannot drift into routine use:
# a longer need is declared again (a fresh, audited decision) or goes through an
# application to the provider (R3).
MAX_DURATION = timedelta(days=30)
REVOKE_REASON = "EMERGENCY_ENDED"
EXPIRED_REASON = "ENDS_AT_PASSED"
EXPIRY_ACTOR = "system:emergency-expiry"
SEALING_COLUMNS = (
    "request_id",
    "time",
    "caller",
    "department",
    "dataset",
    "action",
    "purpose",
    "outcome",
    "subject_records",
    "subject_hashes",
)


@dataclass(frozen=True)
class EmergencyInput:
    title: str
    legal_basis: str
    scope: tuple[tuple[str, tuple[str, ...]], ...]  # (dataset, fields) in request order
    agencies: tuple[str, ...]
    purpose: str
    ends_at: datetime | None


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _failed(reason: str, message: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.FAILED_PRECONDITION, reason, message)


def not_found() -> GovgwError:
    # Another's emergency is as absent as one that does not exist.
    return GovgwError(
        grpc.StatusCode.NOT_FOUND, "EMERGENCY_NOT_FOUND", "no such emergency for this caller"
    )


class EmergencyStore(JsonListStore):
    key = "emergencies"

    def __init__(
        self,
        path: Path,
        grants: GrantStore,
        catalog: Catalog,
        callers: Callable[[str], Caller | None],
        *,
        refresh_interval: float = 0.5,
        storage: Storage | None = None,
    ) -> None:
        self._any_active = False
        super().__init__(path, refresh_interval=refresh_interval, storage=storage)
        self.grants = grants
        self.catalog = catalog
        self.callers = callers  # caller id -> registered caller (the registry's get)

    @property
    def version(self) -> int:
        # While an emergency is active, every decision looks at the file (one stat),
        # so an end recorded by another process narrows access on this process's
        # next call. Otherwise at most every refresh_interval, as for grants: a
        # declaration seen a moment late only widens access a moment late.
        # On PostgreSQL the announcements keep it current: memory only.
        if self.storage is None:
            self._refresh(force=self._any_active)
        return self._version

    def _load(self) -> None:
        super()._load()
        self._any_active = any(e.get("status") == ACTIVE for e in self._items)

    # ----- the policy's view -------------------------------------------------------------

    def policy_view(self) -> tuple[int, list[dict[str, Any]]]:
        """(version, active emergencies as input.emergencies carries them).

        Whether the end time has passed is the policy's to judge against
        input.now, so the view depends on the store's version only and plans
        stay cacheable under it."""
        version, items = self.snapshot()
        return version, [
            {
                "id": e["id"],
                "status": e["status"],
                "agencies": list(e["agencies"]),
                "scope": copy.deepcopy(e["scope"]),
                "ends_at": e["ends_at"],
            }
            for e in items
            if e.get("status") == ACTIVE
        ]

    # ----- declaring ---------------------------------------------------------------------

    def validate(self, e: EmergencyInput, now: datetime) -> dict[str, Any]:
        """The checked declaration, or INVALID_ARGUMENT naming every bad field."""
        v = validation.Violations()
        out: dict[str, Any] = {}
        for name, value, what in (
            ("title", e.title, "name the emergency"),
            ("legal_basis", e.legal_basis, "cite the law or decision the emergency rests on"),
            ("purpose", e.purpose, "say which emergency response the data serves"),
        ):
            try:
                out[name] = text(value, name, what)
            except GovgwError as err:
                v.items.extend(err.violations)
        scope: dict[str, list[str]] = {}
        if not e.scope:
            v.add("scope", "name at least one dataset and its fields", "SCOPE_MISSING")
        for i, (name, fields) in enumerate(e.scope):
            at = f"scope[{i}]"
            ds = self.catalog.get(name) if name else None
            if not name:
                v.add(f"{at}.dataset", "is required", "DATASET_MISSING")
                continue
            if ds is None:
                v.add(f"{at}.dataset", "names no dataset in the catalog", "UNKNOWN_DATASET")
                continue
            if name in scope:
                v.add(f"{at}.dataset", "is repeated", "DUPLICATE_DATASET")
                continue
            if ds.share_class != "conditional":
                v.add(
                    f"{at}.dataset",
                    f"is {ds.share_class} share: an emergency widens conditional-share data only",
                    "DATASET_NOT_CONDITIONAL",
                )
                continue
            if not fields:
                v.add(f"{at}.fields", "name at least one field", "FIELDS_MISSING")
            chosen: list[str] = []
            for j, f in enumerate(fields):
                fd = ds.field(f)
                if fd is None:
                    v.add(f"{at}.fields[{j}]", f"is not a field of {name}", "UNKNOWN_FIELD")
                elif fd.sensitivity == "secret":
                    v.add(f"{at}.fields[{j}]", "is secret: it never leaves", "FIELD_SECRET")
                elif fd.share.operator == "redact":
                    v.add(
                        f"{at}.fields[{j}]",
                        "is redacted when shared: it never leaves",
                        "FIELD_NOT_RELEASABLE",
                    )
                elif f in chosen:
                    v.add(f"{at}.fields[{j}]", "is repeated", "DUPLICATE_FIELD")
                else:
                    chosen.append(f)
            scope[name] = sorted(chosen)
        agencies: list[str] = []
        if not e.agencies:
            v.add("agencies", "designate at least one agency", "AGENCIES_MISSING")
        for i, cid in enumerate(e.agencies):
            c = self.callers(cid) if cid else None
            if c is None:
                v.add(f"agencies[{i}]", "names no registered caller", "UNKNOWN_CALLER")
            elif c.kind != "agency":
                v.add(f"agencies[{i}]", "is not an agency", "CALLER_NOT_AGENCY")
            elif cid in agencies:
                v.add(f"agencies[{i}]", "is repeated", "DUPLICATE_AGENCY")
            else:
                agencies.append(cid)
        if e.ends_at is None:
            v.add("ends_at", "is required: an emergency is time-boxed", "ENDS_AT_MISSING")
        elif e.ends_at <= now:
            v.add("ends_at", "must be after now", "ENDS_AT_NOT_FUTURE")
        elif e.ends_at - now > MAX_DURATION:
            v.add("ends_at", "must be at most 30 days after now", "ENDS_AT_TOO_FAR")
        v.raise_if_any()
        assert e.ends_at is not None
        return {**out, "scope": scope, "agencies": sorted(agencies), "ends_at": stamp(e.ends_at)}

    def declare(self, caller: Caller, e: EmergencyInput, now: datetime) -> dict[str, Any]:
        checked = self.validate(e, now)
        em_id = "em-" + secrets.token_hex(8)
        # Grants first: should the emergency not be recorded after them, they are
        # unusable anyway (the policy needs the active emergency) and are revoked.
        grants = [
            self.grants.add(
                agency,
                dataset,
                fields,
                checked["purpose"],
                checked["ends_at"],
                emergency_id=em_id,
                now=now,
            )
            for agency in checked["agencies"]
            for dataset, fields in sorted(checked["scope"].items())
        ]
        at = stamp(now)
        doc: dict[str, Any] = {
            "id": em_id,
            **checked,
            "declared_by": caller.id,
            "declared_at": at,
            "status": ACTIVE,
            "ended_at": "",
            "ended_by": "",
            "end_reason": "",
            "sealed_at": "",
            "sealed_by": "",
            "sealed_calls": 0,
            "sealing_digest": "",
            "grant_ids": [g["id"] for g in grants],
            "history": [{"at": at, "actor": caller.id, "event": "declared", "reason": ""}],
        }
        try:
            with self._mutate() as items:
                items.append(doc)
        except BaseException:
            for g in grants:
                self.grants.revoke(g["id"], REVOKE_REASON, now)
            raise
        return copy.deepcopy(doc)

    # ----- ending ------------------------------------------------------------------------

    def end(
        self, caller: Caller, em_id: str, reason: str, now: datetime
    ) -> tuple[dict[str, Any], list[str]]:
        """End an active emergency now; (the emergency, the grants revoked)."""
        why = text(reason, "reason", "say why the emergency ends")
        with self._mutate() as items:
            doc = next((e for e in items if e.get("id") == em_id), None)
            if doc is None:
                raise not_found()
            if doc["status"] != ACTIVE:
                raise _failed("EMERGENCY_ENDED", f"emergency {em_id} has already ended")
            self._close(doc, caller.id, "ended", why, now)
            ended = copy.deepcopy(doc)
        return ended, self.revoke_grants(em_id, now)

    def expire_due(
        self, now: datetime, ids: Sequence[str] | None = None
    ) -> list[tuple[dict[str, Any], list[str]]]:
        """End every active emergency (of `ids`, if given) whose end time has passed.

        Also revokes grants still active under an ended emergency (a process
        stopped between the two writes): the policy already refuses them."""
        due = [
            e["id"]
            for e in self.list()
            if e["status"] == ACTIVE
            and parse_time(e["ends_at"]) <= now
            and (ids is None or e["id"] in ids)
        ]
        ended: list[dict[str, Any]] = []
        if due:
            with self._mutate() as items:
                for doc in items:
                    if doc["id"] in due and doc["status"] == ACTIVE:
                        self._close(doc, EXPIRY_ACTOR, "expired", EXPIRED_REASON, now)
                        ended.append(copy.deepcopy(doc))
        out = [(doc, self.revoke_grants(doc["id"], now)) for doc in ended]
        if ids is None:
            self.grants.reload()
            active = {e["id"] for e in self.list() if e["status"] == ACTIVE}
            leftover = {
                g["emergency_id"]
                for g in self.grants.list()
                if g.get("emergency_id")
                and g.get("status") != REVOKED
                and g["emergency_id"] not in active
            }
            for em_id in sorted(leftover - {d["id"] for d in ended}):
                doc = self.get(em_id)
                revoked = self.revoke_grants(em_id, now)
                if doc is not None and revoked:
                    out.append((doc, revoked))
        return out

    @staticmethod
    def _close(doc: dict[str, Any], actor: str, event: str, reason: str, now: datetime) -> None:
        at = stamp(now)
        doc.update(status=ENDED, ended_at=at, ended_by=actor, end_reason=reason)
        doc["history"].append({"at": at, "actor": actor, "event": event, "reason": reason})

    def revoke_grants(self, em_id: str, now: datetime) -> list[str]:
        self.grants.reload()  # another worker may have revoked some a moment ago
        revoked = []
        for g in self.grants.list():
            # A grant the provider suspended is revoked too: reinstating it later
            # must not revive access the emergency gave.
            if g.get("emergency_id") == em_id and g.get("status") != REVOKED:
                self.grants.revoke(g["id"], REVOKE_REASON, now)
                revoked.append(g["id"])
        return revoked

    # ----- sealing -----------------------------------------------------------------------

    def seal(
        self, caller: Caller, em_id: str, entries: Sequence[Mapping[str, Any]], now: datetime
    ) -> dict[str, Any]:
        """Record that what the sealing list names was sealed (or destroyed)."""
        with self._mutate() as items:
            doc = next((e for e in items if e.get("id") == em_id), None)
            if doc is None:
                raise not_found()
            if doc["status"] == ACTIVE:
                raise _failed(
                    "EMERGENCY_ACTIVE", f"emergency {em_id} is active: end it before sealing"
                )
            if doc["sealed_at"]:
                raise _failed("EMERGENCY_SEALED", f"emergency {em_id} is already sealed")
            at = stamp(now)
            doc.update(
                sealed_at=at,
                sealed_by=caller.id,
                sealed_calls=len(entries),
                sealing_digest=digest(entries),
            )
            doc["history"].append({"at": at, "actor": caller.id, "event": "sealed", "reason": ""})
            return copy.deepcopy(doc)

    # ----- reading -----------------------------------------------------------------------

    @staticmethod
    def may_see(caller: Caller, doc: Mapping[str, Any]) -> bool:
        return caller.kind == "admin" or (
            caller.kind == "agency" and caller.id in doc.get("agencies", ())
        )

    def visible(self, caller: Caller, em_id: str) -> dict[str, Any]:
        doc = self.get(em_id) if em_id else None
        if doc is None or not self.may_see(caller, doc):
            raise not_found()
        return doc

    def listed(self, caller: Caller, status: str = "") -> list[dict[str, Any]]:
        """The emergencies the caller may see, oldest first."""
        docs = [e for e in self.list() if self.may_see(caller, e)]
        return sorted(
            (e for e in docs if not status or e["status"] == status),
            key=lambda e: (e["declared_at"], e["id"]),
        )


# ----- the sealing list ------------------------------------------------------------------


def sealing_list(audit: Iterable[Path] | BaseAuditIndex, em_id: str) -> list[dict[str, Any]]:
    """Every audited call whose plan came from the emergency, oldest first.

    A call about several subjects writes one record per subject: it is one
    entry, with its subjects' keyed hashes (the audit trail holds no raw key).
    Through the audit index, only the emergency's records are read; given chain
    files, they are scanned. Reads files: run it off the event loop."""
    records: Iterable[tuple[str, Mapping[str, Any]]]
    if isinstance(audit, BaseAuditIndex):
        audit.refresh()
        records = audit.records_of_emergency(em_id)
    else:
        records = (
            (path.name, rec)
            for path in audit
            for rec in read_records(path)
            if em_id in (rec.get("emergencies") or ())
        )
    calls: dict[tuple[str, str], dict[str, Any]] = {}
    for chain, rec in records:
        rid = str(rec.get("request_id") or f"seq-{rec.get('seq')}")
        entry = calls.get((chain, rid))
        if entry is None:
            entry = calls[(chain, rid)] = {
                "request_id": rid,
                "time": str(rec.get("ts", "")),
                "caller": str(rec.get("caller", "")),
                "department": str(rec.get("department", "")),
                "dataset": str(rec.get("dataset", "")),
                "action": str(rec.get("action", "")),
                "purpose": str(rec.get("purpose", "")),
                "outcome": str(rec.get("outcome", "")),
                "subject_records": 0,
                "subject_hashes": [],
            }
        subject = rec.get("subject")
        if subject:
            entry["subject_records"] += 1
            if subject not in entry["subject_hashes"]:
                entry["subject_hashes"].append(subject)
    return sorted(calls.values(), key=lambda e: (e["time"], e["request_id"]))


def digest(entries: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 of the sealing list as sealed, so a later reading can be compared."""
    blob = json.dumps(list(entries), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def to_csv(entries: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(SEALING_COLUMNS)
    for e in entries:
        row = [e.get(c, "") for c in SEALING_COLUMNS]
        row[-1] = ";".join(e.get("subject_hashes") or ())
        w.writerow(row)
    return out.getvalue()
