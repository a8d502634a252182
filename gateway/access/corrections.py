"""Correction requests (校核, R8): a data subject disputes a value, the provider answers.

The subject (authenticated by a subject token) names a dataset, a field, a
statement of the correct value and optionally a reference to evidence. The
request reaches the dataset's provider (the agency bound to the catalog's
provider id, `is_provider`) with its deadline: 5 working days,
extendable once to 10 with a reason (Aba 2024 art. 22; Aba 2021 art. 28;
Yichuan art. 19; counted by `deadlines`). The provider answers: corrected
(with a note of what was done) or rejected (with a reason and the legal basis).

The statement, the evidence reference and the subject key are personal data:
they are sealed at rest (`sealed`) and never audited. The subject sees their
own requests; the provider sees the subject key as well, because it holds the
record and must find it to correct it. Nobody else sees these requests.

Requests live in SQLite (`corrections.sqlite`) or, with a database URL, in
PostgreSQL's `corrections` table (storage/documents.py): one JSON document per
request with its history; the subject is indexed by the keyed subject hash only.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from gateway import validation
from gateway.access.applications import _stamp, deadline_error, provides, text
from gateway.access.deadlines import (
    DEFAULT_PROFILE,
    Deadline,
    DeadlineError,
    DeadlineKind,
    deadline,
)
from gateway.access.disputes import STORE, build_index, index_path, publish
from gateway.access.sealed import Sealer
from gateway.access.subject_tokens import SubjectIdentity
from gateway.callers import Caller
from gateway.catalog import Catalog
from gateway.errors import GovgwError, invalid, not_found
from gateway.keys import KeyRing
from gateway.storage import Storage
from gateway.storage.documents import DocumentRows, Tx

PENDING, CORRECTED, REJECTED = "pending", "corrected", "rejected"
STATUSES = (PENDING, CORRECTED, REJECTED)
STATEMENT_MAX = 500
EVIDENCE_MAX = 120


def _failed(reason: str, message: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.FAILED_PRECONDITION, reason, message)


def subject_text(value: str, field_name: str, maximum: int, required: bool) -> str:
    """A subject's own words: bounded, printable. May name people (it is sealed).
    Kept as written (no NFKC): a statement of the correct value is evidence."""
    t = (value or "").strip()
    upper = field_name.upper()
    if not t:
        if required:
            raise invalid(field_name, "is required", f"{upper}_MISSING")
        return ""
    if len(t) > maximum:
        raise invalid(field_name, f"is longer than {maximum} characters", f"{upper}_TOO_LONG")
    if any(unicodedata.category(c) == "Cc" for c in t):
        raise invalid(field_name, "contains control characters", f"{upper}_MALFORMED")
    return t


# The SQLite file's table (PostgreSQL's comes from storage/migrations.py).
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS corrections (id TEXT PRIMARY KEY,"
    " subject_hash TEXT NOT NULL, dataset TEXT NOT NULL, field TEXT NOT NULL,"
    " status TEXT NOT NULL, filed_at TEXT NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS corrections_subject ON corrections (subject_hash)",
)


class CorrectionStore:
    def __init__(
        self,
        path: Path,
        catalog: Catalog,
        keyring: KeyRing,
        *,
        jurisdiction: str = DEFAULT_PROFILE,
        storage: Storage | None = None,
    ) -> None:
        self.path = Path(path)
        self.catalog = catalog
        self.keyring = keyring
        self.sealer = Sealer(keyring)
        self.jurisdiction = jurisdiction
        self._rows = DocumentRows(self.path, storage, STORE, _SCHEMA)
        if self._rows.storage is None:
            with self._db() as db:
                self._publish(db)

    def _publish(self, db: Tx) -> None:
        """Rewrite the pending-corrections index (`disputes`) inside the transaction
        that changed a status: writers hold the database's write lock, so indexes are
        published in the order of the changes they reflect. On PostgreSQL the change
        is announced instead, and every node's `DisputedFields` rebuilds its index."""
        if self._rows.storage is not None:
            db.announce()
            return
        publish(index_path(self.path), build_index(db, PENDING))

    def _db(self) -> contextlib.AbstractContextManager[Tx]:
        return self._rows.transaction()

    # ----- the subject ---------------------------------------------------------------------

    def file(
        self,
        subject: SubjectIdentity,
        *,
        dataset: str,
        field: str,
        statement: str,
        evidence_ref: str,
        now: datetime,
    ) -> dict[str, Any]:
        v = validation.Violations()
        ds = v.check(validation.dataset, self.catalog, dataset)
        if ds is not None:
            if ds.subject_kind != subject.kind:
                v.add(
                    "dataset",
                    f"holds records of {ds.subject_kind} subjects, not of this subject",
                    "DATASET_SUBJECT_KIND",
                )
            if not field:
                v.add("field", "is required", "FIELD_MISSING")
            elif ds.field(field) is None:
                v.add("field", f"is not a field of {ds.name}", "UNKNOWN_FIELD")
        said = v.check(subject_text, statement, "statement", STATEMENT_MAX, True)
        evidence = v.check(subject_text, evidence_ref, "evidence_ref", EVIDENCE_MAX, False)
        v.raise_if_any()
        assert ds is not None and said is not None
        try:
            due = deadline(DeadlineKind.CORRECTION, self.jurisdiction, now)
        except DeadlineError as e:
            raise deadline_error(e) from None
        subject_hash = self.keyring.subject_hash(subject.key)
        cid = "cor-" + secrets.token_hex(8)
        at = _stamp(now)
        seal = self.sealer.seal
        doc: dict[str, Any] = {
            "id": cid,
            "dataset": ds.name,
            "field": field,
            "provider": ds.provider,
            "subject_type": subject.kind,
            "subject_sealed": seal(subject.key, cid, "subject"),
            "statement_sealed": seal(said, cid, "statement"),
            "evidence_sealed": seal(evidence or "", cid, "evidence_ref"),
            "status": PENDING,
            "filed_at": at,
            "deadline": due.to_dict(),
            "extension_reason": "",
            "answer": None,
            "history": [{"at": at, "actor": "subject", "event": "filed"}],
        }
        with self._db() as db:
            db.lock(f"corrections:{subject_hash}")  # one pending correction per field
            rows = db.execute(
                "SELECT id FROM corrections WHERE subject_hash=? AND dataset=? AND field=?"
                " AND status=?",
                (subject_hash, ds.name, field, PENDING),
            ).fetchall()
            if rows:
                raise GovgwError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    "CORRECTION_PENDING",
                    "a correction of this field is already pending; wait for its answer",
                    metadata={"dataset": ds.name, "correction_id": rows[0][0]},
                )
            db.execute(
                "INSERT INTO corrections VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cid, subject_hash, ds.name, field, PENDING, at, json.dumps(doc)),
            )
            self._publish(db)
        return self.view(doc, now, for_provider=False)

    def mine(self, subject: SubjectIdentity, now: datetime) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT doc FROM corrections WHERE subject_hash=? ORDER BY filed_at, id",
                (self.keyring.subject_hash(subject.key),),
            ).fetchall()
        return [self.view(json.loads(r[0]), now, for_provider=False) for r in rows]

    # ----- the provider --------------------------------------------------------------------

    def get(self, cid: str) -> dict[str, Any] | None:
        with self._db() as db:
            row = db.execute("SELECT doc FROM corrections WHERE id=?", (cid,)).fetchone()
        return json.loads(row[0]) if row else None

    def subject_of(self, doc: dict[str, Any]) -> str:
        return self.sealer.open(doc["subject_sealed"], doc["id"], "subject")

    def _provides(self, caller: Caller, doc: dict[str, Any]) -> bool:
        return provides(self.catalog, caller, doc["dataset"])

    def for_provider(
        self,
        caller: Caller,
        now: datetime,
        *,
        dataset: str = "",
        status: str = "",
        overdue_only: bool = False,
    ) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT doc FROM corrections ORDER BY filed_at, id").fetchall()
        out = []
        for (raw,) in rows:
            doc = json.loads(raw)
            if not self._provides(caller, doc):
                continue
            if (dataset and doc["dataset"] != dataset) or (status and doc["status"] != status):
                continue
            view = self.view(doc, now, for_provider=True)
            if overdue_only and not view["overdue"]:
                continue
            out.append(view)
        return out

    @contextmanager
    def _changing(self, caller: Caller, cid: str) -> Iterator[dict[str, Any]]:
        """The provider's pending request, changed and written in one transaction."""
        if not cid:
            raise invalid("correction_id", "is required", "CORRECTION_ID_MISSING")
        with self._db() as db:
            db.lock(f"correction:{cid}")  # answered once, whichever node is asked
            row = db.execute("SELECT doc FROM corrections WHERE id=?", (cid,)).fetchone()
            doc = json.loads(row[0]) if row else None
            if doc is None or not self._provides(caller, doc):
                # Another provider's request is as absent as one that does not exist.
                raise not_found(
                    "CORRECTION_NOT_FOUND", "no such correction request for this caller"
                )
            if doc["status"] != PENDING:
                raise _failed("CORRECTION_ANSWERED", f"the request is already {doc['status']}")
            yield doc
            db.execute(
                "UPDATE corrections SET status=?, doc=? WHERE id=?",
                (doc["status"], json.dumps(doc), cid),
            )
            if doc["status"] != PENDING:
                self._publish(db)

    def extend(self, caller: Caller, cid: str, reason: str, now: datetime) -> dict[str, Any]:
        """The one extension to 10 working days (情况复杂的), with a reason."""
        why = text(reason, "reason", "say why the request needs longer")
        with self._changing(caller, cid) as doc:
            try:
                doc["deadline"] = Deadline.from_dict(doc["deadline"]).extend().to_dict()
            except DeadlineError as e:
                raise deadline_error(e) from None
            doc["extension_reason"] = why
            doc["history"].append(
                {"at": _stamp(now), "actor": caller.id, "event": "extended", "reason": why}
            )
        return self.view(doc, now, for_provider=True)

    def answer(
        self,
        caller: Caller,
        cid: str,
        *,
        corrected: bool,
        note: str,
        legal_basis: str,
        now: datetime,
    ) -> dict[str, Any]:
        v = validation.Violations()
        said = v.check(text, note, "note", "say what was corrected" if corrected else "say why not")
        basis = v.check(
            lambda: text(legal_basis, "legal_basis", "cite the article", required=not corrected)
        )
        v.raise_if_any()
        with self._changing(caller, cid) as doc:
            at = _stamp(now)
            doc["status"] = CORRECTED if corrected else REJECTED
            doc["answer"] = {
                "by": caller.id,
                "department": caller.department,
                "at": at,
                "note": said,
                "legal_basis": basis or "",
            }
            doc["history"].append({"at": at, "actor": caller.id, "event": doc["status"]})
        return self.view(doc, now, for_provider=True)

    def pending_deadlines(self) -> list[tuple[str, str, str, Deadline]]:
        """(id, dataset, provider, deadline) of every pending request, for the deadlines
        report: nothing sealed is opened."""
        with self._db() as db:
            rows = db.execute(
                "SELECT doc FROM corrections WHERE status=? ORDER BY filed_at, id", (PENDING,)
            ).fetchall()
        docs = [json.loads(r[0]) for r in rows]
        return [
            (d["id"], d["dataset"], d["provider"], Deadline.from_dict(d["deadline"])) for d in docs
        ]

    # ----- views ---------------------------------------------------------------------------

    def view(self, doc: dict[str, Any], now: datetime, *, for_provider: bool) -> dict[str, Any]:
        """The request as its subject (or, with the subject key, its provider) sees it."""
        due = Deadline.from_dict(doc["deadline"])
        answer = doc.get("answer") or {}
        answered_at = answer.get("at", "")
        at = datetime.fromisoformat(answered_at.replace("Z", "+00:00")) if answered_at else now
        cid = doc["id"]
        out = {
            k: doc[k]
            for k in ("id", "dataset", "field", "provider", "status", "filed_at", "subject_type")
        }
        out.update(
            statement=self.sealer.open(doc["statement_sealed"], cid, "statement"),
            evidence_ref=self.sealer.open(doc["evidence_sealed"], cid, "evidence_ref"),
            due=due.due.isoformat(),
            working_days=due.working_days,
            extended=due.extended,
            extension_reason=doc.get("extension_reason", ""),
            overdue=due.overdue(at),
            answer=answer,
            subject_key=self.subject_of(doc) if for_provider else "",
        )
        return out
