"""Applications (申请) for conditional access, and the grants (授权) they create.

An agency applies for a dataset whose share class is `conditional` (R3); a
public caller for one whose open class is `conditional` (R6). The provider
(an agency caller bound to the dataset's provider id in the catalog)
approves, possibly narrowing the fields, or denies with a reason and legal
basis, within the jurisdiction's working-day deadline (`deadlines`). Approval
adds a grant to the `GrantStore`, which the policy reads at once. The provider
may later suspend a grant for misuse, reinstate it, or end it (R5, R10).

Rules checked on application:
- research use only for public-interest work (Aba 2024 art. 32);
- commercial use only under a recorded competitive authorization (its reference);
- an open application records acceptance of the security commitment and the
  use agreement (Aba 2021 art. 35, Yingkou art. 29).

Applications live in SQLite (`applications.db` in the data directory) or, with a
database URL, in PostgreSQL's `applications` table (storage/documents.py): one
JSON document per application with its history of transitions; each change is one
transaction, so the server, the CLI and other nodes may all write.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from gateway import validation
from gateway.access.deadlines import (
    DEFAULT_PROFILE,
    Deadline,
    DeadlineError,
    DeadlineKind,
    deadline,
)
from gateway.callers import Caller
from gateway.catalog import Catalog, Dataset
from gateway.errors import FieldViolation, GovgwError, invalid
from gateway.grants import ACTIVE, REVOKED, SUSPENDED, GrantError, GrantStore
from gateway.storage import Storage
from gateway.storage.documents import DocumentRows, Tx

SHARE, OPEN = "share", "open"
PENDING, APPROVED, DENIED = "pending", "approved", "denied"
USES = ("duty", "public_service", "innovation", "research", "commercial")
MAX_DURATION_DAYS = 365
TEXT_MAX = 200


@dataclass(frozen=True)
class ApplicationInput:
    dataset: str
    fields: tuple[str, ...]
    purpose: str
    scenario: str
    duration_days: int
    use: str = ""
    public_interest: bool = False
    competitive_authorization: str = ""
    security_commitment_accepted: bool = False
    use_agreement_accepted: bool = False


def is_provider(caller: Caller, ds: Dataset) -> bool:
    """An agency bound to the dataset's provider id (`govgw callers add --provider-id`).

    By id, not by name: the catalog's display name (县民政局) is the ending of
    many departments' names (汶川县民政局, but also 某县民政局), so a name match
    would let any of them decide for the provider."""
    return caller.represents(ds.provider_id)


def provides(catalog: Catalog, caller: Caller, dataset: str) -> bool:
    """Is the caller the provider of this dataset (unknown datasets: no)?"""
    ds = catalog.get(dataset)
    return ds is not None and is_provider(caller, ds)


# Every recorded text of the access workflows (scenarios, reasons, legal bases, notes,
# titles) goes through the one check of the input edge: validation.recorded_text.
text = validation.recorded_text


def _failed(reason: str, message: str, **metadata: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.FAILED_PRECONDITION, reason, message, metadata=metadata)


def _denied(reason: str, message: str, **metadata: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.PERMISSION_DENIED, reason, message, metadata=metadata)


def _not_found(reason: str, message: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.NOT_FOUND, reason, message)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def deadline_error(e: DeadlineError) -> GovgwError:
    return _failed(e.reason, str(e))


# The SQLite file's table (PostgreSQL's comes from storage/migrations.py).
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS applications (id TEXT PRIMARY KEY,"
    " applicant TEXT NOT NULL, dataset TEXT NOT NULL, status TEXT NOT NULL,"
    " created_at TEXT NOT NULL, doc TEXT NOT NULL)",
)


class ApplicationStore:
    def __init__(
        self,
        path: Path,
        grants: GrantStore,
        catalog: Catalog,
        *,
        jurisdiction: str = DEFAULT_PROFILE,
        storage: Storage | None = None,
    ) -> None:
        self.path = Path(path)
        self.grants = grants
        self.catalog = catalog
        self.jurisdiction = jurisdiction
        self._rows = DocumentRows(self.path, storage, "applications", _SCHEMA)

    def _db(self) -> contextlib.AbstractContextManager[Tx]:
        return self._rows.transaction()

    # ----- applying ----------------------------------------------------------------------

    def validate(self, caller: Caller, a: ApplicationInput) -> tuple[str, Dataset, dict[str, Any]]:
        """The application's kind, dataset and normalized fields, or INVALID_ARGUMENT /
        FAILED_PRECONDITION naming what is wrong."""
        if caller.kind == "agency":
            kind = SHARE
        elif caller.kind == "public":
            kind = OPEN
        else:
            raise _denied(
                "APPLICANT_KIND_NOT_ALLOWED",
                "only agencies (share) and public callers (open) apply for access",
            )
        v = validation.Violations()
        ds = self.catalog.get(a.dataset) if a.dataset else None
        if not a.dataset:
            v.add("dataset", "is required", "DATASET_MISSING")
        elif ds is None:
            v.add("dataset", "names no dataset in the catalog", "UNKNOWN_DATASET")
        if not a.fields:
            v.add("fields", "name at least one field", "FIELDS_MISSING")
        elif ds is not None:
            for i, f in enumerate(a.fields):
                if ds.field(f) is None:
                    v.add(f"fields[{i}]", f"is not a field of {ds.name}", "UNKNOWN_FIELD")
        out: dict[str, Any] = {}
        for name, value, what in (
            ("purpose", a.purpose, "say which duty or use the data serves"),
            ("scenario", a.scenario, "describe the scenario in which the data is used"),
        ):
            try:
                out[name] = text(value, name, what)
            except GovgwError as e:
                v.items.extend(e.violations)
        if not 1 <= a.duration_days <= MAX_DURATION_DAYS:
            v.add("duration_days", f"must be 1 to {MAX_DURATION_DAYS} days", "DURATION_INVALID")
        use = a.use or ("duty" if kind == SHARE else "")
        if use not in USES:
            v.add("use", f"must be one of {', '.join(USES)}", "USE_INVALID")
        if use == "research" and not a.public_interest:
            v.add(
                "public_interest",
                "research access is granted only for public-interest work",
                "RESEARCH_NOT_PUBLIC_INTEREST",
            )
        authorization = ""
        if use == "commercial":
            try:
                authorization = text(
                    a.competitive_authorization,
                    "competitive_authorization",
                    "give the reference of the recorded competitive authorization",
                )
            except GovgwError as e:
                v.items.extend(e.violations)
        if kind == OPEN:
            if not a.security_commitment_accepted:
                v.add(
                    "security_commitment_accepted",
                    "an open application must accept the security commitment",
                    "SECURITY_COMMITMENT_REQUIRED",
                )
            if not a.use_agreement_accepted:
                v.add(
                    "use_agreement_accepted",
                    "an open application must accept the use agreement",
                    "USE_AGREEMENT_REQUIRED",
                )
        v.raise_if_any()
        assert ds is not None
        klass = ds.share_class if kind == SHARE else ds.open_class
        if klass == "unconditional":
            raise _failed(
                "APPLICATION_NOT_NEEDED",
                f"dataset {ds.name} is unconditional {kind}: use it without applying",
                dataset=ds.name,
            )
        if klass != "conditional":
            reason = "DATASET_NOT_SHARED" if kind == SHARE else "DATASET_NOT_OPEN"
            raise _failed(
                reason,
                f"dataset {ds.name} is not {kind}d ({ds.class_reason or 'no reason given'}; "
                f"{ds.legal_basis or 'no legal basis given'})",
                dataset=ds.name,
            )
        out.update(
            use=use,
            public_interest=bool(a.public_interest),
            competitive_authorization=authorization,
            security_commitment_accepted=bool(a.security_commitment_accepted),
            use_agreement_accepted=bool(a.use_agreement_accepted),
        )
        return kind, ds, out

    def apply(self, caller: Caller, a: ApplicationInput, now: datetime) -> dict[str, Any]:
        kind, ds, checked = self.validate(caller, a)
        try:
            due = deadline(
                DeadlineKind.SHARE if kind == SHARE else DeadlineKind.OPEN, self.jurisdiction, now
            )
        except DeadlineError as e:
            raise deadline_error(e) from None
        app_id = "app-" + secrets.token_hex(8)
        at = _stamp(now)
        doc: dict[str, Any] = {
            "id": app_id,
            "kind": kind,
            "applicant": caller.id,
            "applicant_kind": caller.kind,
            "department": caller.department,
            "dataset": ds.name,
            "provider": ds.provider,
            "fields": sorted(set(a.fields)),
            "duration_days": a.duration_days,
            **checked,
            "status": PENDING,
            "created_at": at,
            "deadline": due.to_dict(),
            "decision": None,
            "grant_id": "",
            "history": [{"at": at, "actor": caller.id, "event": "applied"}],
        }
        with self._db() as db:
            db.lock(f"applications:{caller.id}")  # one pending application per purpose
            pending = db.execute(
                "SELECT doc FROM applications WHERE applicant=? AND dataset=? AND status=?",
                (caller.id, ds.name, PENDING),
            ).fetchall()
            if any(json.loads(r[0])["purpose"] == doc["purpose"] for r in pending):
                raise GovgwError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    "APPLICATION_PENDING",
                    "an application for this dataset and purpose is already pending",
                    metadata={"dataset": ds.name},
                )
            db.execute(
                "INSERT INTO applications VALUES (?, ?, ?, ?, ?, ?)",
                (app_id, caller.id, ds.name, PENDING, at, json.dumps(doc, ensure_ascii=False)),
            )
        return self._view(doc, now)

    # ----- reading -----------------------------------------------------------------------

    def get(self, app_id: str) -> dict[str, Any] | None:
        with self._db() as db:
            row = db.execute("SELECT doc FROM applications WHERE id=?", (app_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def _all(self) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT doc FROM applications ORDER BY created_at, id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def may_see(self, caller: Caller, doc: dict[str, Any]) -> bool:
        if caller.kind == "admin" or doc["applicant"] == caller.id:
            return True
        return provides(self.catalog, caller, doc["dataset"])

    def list(
        self,
        caller: Caller,
        now: datetime,
        *,
        status: str = "",
        dataset: str = "",
        overdue_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Applications the caller made or must answer (an admin sees all), oldest first."""
        out = []
        for doc in self._all():
            if not self.may_see(caller, doc):
                continue
            if (status and doc["status"] != status) or (dataset and doc["dataset"] != dataset):
                continue
            view = self._view(doc, now)
            if overdue_only and not view["overdue"]:
                continue
            out.append(view)
        return out

    def visible(self, caller: Caller, app_id: str, now: datetime) -> dict[str, Any]:
        doc = self.get(app_id)
        if doc is None or not self.may_see(caller, doc):
            # Someone else's application is as absent as one that does not exist.
            raise _not_found("APPLICATION_NOT_FOUND", "no such application for this caller")
        return self._view(doc, now)

    @staticmethod
    def _view(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
        due = Deadline.from_dict(doc["deadline"])
        decided_at = doc["decision"]["at"] if doc.get("decision") else ""
        at = datetime.fromisoformat(decided_at.replace("Z", "+00:00")) if decided_at else now
        return {**doc, "overdue": due.overdue(at), "due": due.due.isoformat()}

    # ----- deciding ----------------------------------------------------------------------

    def decide(
        self,
        caller: Caller,
        app_id: str,
        *,
        approve: bool,
        fields: Sequence[str],
        reason: str,
        legal_basis: str,
        now: datetime,
    ) -> dict[str, Any]:
        v = validation.Violations()
        checked: dict[str, str] = {}
        for name, value, what in (
            ("reason", reason, "say why"),
            ("legal_basis", legal_basis, "cite the article the decision rests on"),
        ):
            try:
                checked[name] = text(value, name, what, required=not approve)
            except GovgwError as e:
                v.items.extend(e.violations)
        if not app_id:
            v.add("application_id", "is required", "APPLICATION_ID_MISSING")
        v.raise_if_any()
        with self._db() as db:
            db.lock(f"application:{app_id}")  # decided once, whichever node is asked
            row = db.execute("SELECT doc FROM applications WHERE id=?", (app_id,)).fetchone()
            doc = json.loads(row[0]) if row else None
            if doc is None or not self.may_see(caller, doc):
                raise _not_found("APPLICATION_NOT_FOUND", "no such application for this caller")
            ds = self.catalog.get(doc["dataset"])
            if ds is None or not is_provider(caller, ds):
                raise _denied(
                    "PROVIDER_REQUIRED",
                    "only the dataset's provider decides an application",
                    dataset=doc["dataset"],
                )
            if doc["status"] != PENDING:
                raise _failed("APPLICATION_DECIDED", f"the application is already {doc['status']}")
            granted = sorted(set(fields)) if fields else doc["fields"]
            extra = [
                FieldViolation(f"fields[{i}]", "was not requested: approval may only narrow", "FIELD_NOT_REQUESTED")
                for i, f in enumerate(fields)
                if f not in doc["fields"]
            ]  # fmt: skip
            if approve and extra:
                raise GovgwError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "FIELD_NOT_REQUESTED",
                    "approved fields must be among the requested fields",
                    violations=extra,
                )
            at = _stamp(now)
            decision = {
                "by": caller.id,
                "department": caller.department,
                "at": at,
                "approved": approve,
                "reason": checked["reason"],
                "legal_basis": checked["legal_basis"],
            }
            grant: dict[str, Any] | None = None
            if approve:
                decision["fields"] = granted
                try:
                    grant = self.grants.add(
                        doc["applicant"],
                        doc["dataset"],
                        granted,
                        doc["purpose"],
                        now + timedelta(days=int(doc["duration_days"])),
                        application_id=app_id,
                        now=now,
                    )
                except GrantError as e:
                    raise _failed("GRANT_REFUSED", str(e)) from None
            doc.update(
                status=APPROVED if approve else DENIED,
                decision=decision,
                grant_id=grant["id"] if grant else "",
            )
            doc["history"].append(
                {"at": at, "actor": caller.id, "event": doc["status"], "grant_id": doc["grant_id"]}
            )
            try:
                db.execute(
                    "UPDATE applications SET status=?, doc=? WHERE id=?",
                    (doc["status"], json.dumps(doc, ensure_ascii=False), app_id),
                )
            except Exception:
                if grant is not None:  # keep the two stores consistent
                    self.grants.set_status(grant["id"], REVOKED, "application not recorded", now)
                raise
        return self._view(doc, now)

    # ----- grants after the decision -----------------------------------------------------

    def change_grant(
        self, caller: Caller, grant_id: str, status: str, reason: str, now: datetime
    ) -> dict[str, Any]:
        """The provider suspends (misuse), reinstates or ends (revokes) a grant."""
        if status not in (ACTIVE, SUSPENDED, REVOKED):
            raise invalid("status", "must be active, suspended or revoked", "STATUS_INVALID")
        why = text(reason, "reason", "say why")
        grant = self.grants.get(grant_id) if grant_id else None
        ds = self.catalog.get(grant["dataset"]) if grant else None
        if (
            grant is None
            or ds is None
            or not (
                is_provider(caller, ds) or grant["caller"] == caller.id or caller.kind == "admin"
            )
        ):
            raise _not_found("GRANT_NOT_FOUND", "no such grant for this caller")
        if not is_provider(caller, ds) and caller.kind != "admin":
            raise _denied(
                "PROVIDER_REQUIRED", "only the dataset's provider changes a grant",
                dataset=ds.name,
            )  # fmt: skip
        if grant["status"] == REVOKED:
            raise _failed("GRANT_REVOKED", "a revoked grant cannot change; apply again")
        if grant["status"] == status:
            raise _failed("GRANT_UNCHANGED", f"the grant is already {status}")
        changed = self.grants.set_status(grant_id, status, why, now)
        self._note(grant, caller.id, f"grant_{status}", why, now)
        return changed

    def _note(
        self, grant: dict[str, Any], actor: str, event: str, reason: str, now: datetime
    ) -> None:
        """Add a transition of the grant to its application's history, if it came from one."""
        app_id = grant.get("application_id", "")
        if not app_id:
            return
        with self._db() as db:
            db.lock(f"application:{app_id}")  # no history entry lost to a concurrent one
            row = db.execute("SELECT doc FROM applications WHERE id=?", (app_id,)).fetchone()
            if row is None:
                return
            doc = json.loads(row[0])
            doc["history"].append(
                {"at": _stamp(now), "actor": actor, "event": event, "grant_id": grant["id"],
                 "reason": reason}
            )  # fmt: skip
            db.execute(
                "UPDATE applications SET doc=? WHERE id=?",
                (json.dumps(doc, ensure_ascii=False), app_id),
            )

    def record_sweep(self, grant: dict[str, Any], now: datetime) -> None:
        self._note(grant, "system:sweep", "grant_revoked", "unused for 3 months", now)


def normalize_fields(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(unicodedata.normalize("NFKC", f).strip() for f in values if f.strip())
