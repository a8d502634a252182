"""Withdrawal of opened data (撤回, R9): suspended at once, then reviewed by the provider.

A data subject whose record is opened to the public (a dataset whose open
class is not `none`) asks to withdraw it, with a reason (Aba 2024 art. 33: on
a rights complaint, suspend the opening at once, then withdraw or reprocess,
and inform). From the next call on, in every worker process, public callers
on the open route get for that subject in that dataset exactly what they get
for a subject the pool does not hold; agencies' share access is unaffected
(the regulation suspends the *opening*). The provider reviews: uphold (the
record stays withdrawn), reinstate (with a reason) or reprocess (reinstated
after the record was reprocessed, e.g. desensitized further). The subject sees
the status and the provider's reason.

Store: one JSON file (`withdrawals.json`), written under a file lock and
replaced atomically; readers stat it on every check, so a withdrawal made by
one worker is honoured by all others from their very next call. The subject
is indexed by the keyed subject hash; the subject key (for the provider) and
the subject's reason are sealed (`sealed`).

With a database URL the list is one row of PostgreSQL's `documents` table
(storage/documents.py), still sealed and keyed-hashed: a change locks the row and
announces the store, and every node reloads its in-memory list in the storage's
listener thread, so the per-call check reads memory only and a withdrawal made
through any node is honoured by every node within the listener's delay.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from gateway import validation
from gateway.access.applications import _stamp, provides, text
from gateway.access.corrections import subject_text
from gateway.access.sealed import Sealer
from gateway.access.subject_tokens import SubjectIdentity
from gateway.callers import Caller
from gateway.catalog import Catalog
from gateway.errors import GovgwError, invalid, not_found, unavailable
from gateway.files import exclusive, replace_atomically
from gateway.keys import KeyRing
from gateway.storage import Storage, documents

SUSPENDED = "suspended"  # at once, pending review
WITHDRAWN = "withdrawn"  # the provider upheld it
REINSTATED = "reinstated"
REPROCESSED = "reprocessed"
STATUSES = (SUSPENDED, WITHDRAWN, REINSTATED, REPROCESSED)
IN_FORCE = frozenset({SUSPENDED, WITHDRAWN})
REVIEWS = {"uphold": WITHDRAWN, "reinstate": REINSTATED, "reprocess": REPROCESSED}
REASON_MAX = 500
STORE = "withdrawals"  # its row in `documents`, and the name its changes are announced under

log = logging.getLogger("govgw.withdrawals")


class WithdrawalStore:
    def __init__(
        self, path: Path, catalog: Catalog, keyring: KeyRing, storage: Storage | None = None
    ) -> None:
        self.path = Path(path)
        self.catalog = catalog
        self.keyring = keyring
        self.sealer = Sealer(keyring)
        self._lock = threading.Lock()
        self._stamp: Any = None  # the file's (inode, mtime, size), or the storage's stamp
        self._docs: list[dict[str, Any]] = []
        # (dataset, subject hash) of every withdrawal in force: the read step's check.
        self._in_force: frozenset[tuple[str, str]] = frozenset()
        self.storage = documents.shared(storage)
        if self.storage is not None:
            self._db_load()
            self.storage.subscribe(STORE, self._db_load)  # in the listener thread

    # ----- the read step -------------------------------------------------------------------

    def withdrawn(self, dataset: str, subject_key: str) -> bool:
        """Is this subject's record in this dataset withdrawn from opening?

        One stat per call (no interval): a withdrawal is honoured from the very
        next call in every process, as art. 33 asks ("at once"). On PostgreSQL no
        look at all: the announcements keep the list current."""
        if self.storage is None:
            self._refresh()
        in_force = self._in_force
        if not in_force:
            return False
        return (dataset, self.keyring.subject_hash(subject_key)) in in_force

    def _db_load(self) -> None:
        assert self.storage is not None
        stamp, _, docs = documents.read(self.storage, STORE, [])
        in_force = frozenset(
            (d["dataset"], d["subject_hash"]) for d in docs if d["status"] in IN_FORCE
        )
        with self._lock:
            self._docs, self._in_force, self._stamp = list(docs), in_force, stamp

    def _refresh(self, *, force: bool = False) -> None:
        if self.storage is not None:
            if force or self.storage.stamp(STORE) != self._stamp:
                self._db_load()
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._docs, self._in_force = None, [], frozenset()
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp and not force:
            return
        with self._lock:
            try:
                docs = list(json.loads(self.path.read_text(encoding="utf-8"))["withdrawals"])
                in_force = frozenset(
                    (d["dataset"], d["subject_hash"]) for d in docs if d["status"] in IN_FORCE
                )
            except (OSError, ValueError, KeyError, TypeError) as e:
                # A hand-edited, broken file: writers refuse it; readers keep honouring
                # the withdrawals last read rather than reopening records.
                if force:
                    raise
                log.error("withdrawal store unreadable, keeping the last: %s", type(e).__name__)
                return
            self._docs, self._in_force, self._stamp = docs, in_force, stamp

    @contextlib.contextmanager
    def _mutate(self) -> Iterator[list[dict[str, Any]]]:
        if self.storage is not None:
            with documents.change(self.storage, STORE, []) as docs:
                yield docs  # an exception in the body rolls the transaction back
            self._db_load()  # this node sees its own change at once
            return
        with exclusive(self.path):
            try:
                self._refresh(force=True)
            except (OSError, ValueError, KeyError, TypeError):
                # Never overwrite a file that cannot be read: it holds withdrawals in force.
                raise unavailable(
                    "WITHDRAWAL_STORE_UNREADABLE",
                    "the withdrawal store cannot be read; an operator must repair it",
                ) from None
            docs = copy.deepcopy(self._docs)
            yield docs  # an exception in the body leaves the file untouched
            text = json.dumps({"withdrawals": docs}, indent=1, sort_keys=True)
            replace_atomically(self.path, text.encode("utf-8"))
            self._refresh(force=True)

    # ----- the subject ---------------------------------------------------------------------

    def request(
        self, subject: SubjectIdentity, *, dataset: str, reason: str, now: datetime
    ) -> dict[str, Any]:
        v = validation.Violations()
        ds = v.check(validation.dataset, self.catalog, dataset)
        if ds is not None and ds.subject_kind != subject.kind:
            v.add(
                "dataset",
                f"holds records of {ds.subject_kind} subjects, not of this subject",
                "DATASET_SUBJECT_KIND",
            )
        why = v.check(subject_text, reason, "reason", REASON_MAX, True)
        v.raise_if_any()
        assert ds is not None and why is not None
        if ds.open_class == "none":
            raise GovgwError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "DATASET_NOT_OPEN",
                f"dataset {ds.name} is not opened to the public: there is nothing to withdraw",
                metadata={"dataset": ds.name},
            )
        subject_hash = self.keyring.subject_hash(subject.key)
        wid = "wd-" + secrets.token_hex(8)
        at = _stamp(now)
        doc = {
            "id": wid,
            "dataset": ds.name,
            "provider": ds.provider,
            "subject_hash": subject_hash,
            "subject_type": subject.kind,
            "subject_sealed": self.sealer.seal(subject.key, wid, "subject"),
            "reason_sealed": self.sealer.seal(why, wid, "reason"),
            "status": SUSPENDED,
            "requested_at": at,
            "review": None,
            "history": [{"at": at, "actor": "subject", "event": SUSPENDED}],
        }
        with self._mutate() as docs:
            for d in docs:
                if (
                    d["dataset"] == ds.name
                    and d["subject_hash"] == subject_hash
                    and d["status"] in IN_FORCE
                ):
                    raise GovgwError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        "WITHDRAWAL_IN_FORCE",
                        "this record is already withdrawn from opening",
                        metadata={"dataset": ds.name, "withdrawal_id": d["id"]},
                    )
            docs.append(doc)
        return self.view(doc, for_provider=False)

    def mine(self, subject: SubjectIdentity) -> list[dict[str, Any]]:
        self._refresh()
        h = self.keyring.subject_hash(subject.key)
        return [self.view(d, for_provider=False) for d in self._docs if d["subject_hash"] == h]

    # ----- the provider --------------------------------------------------------------------

    def get(self, wid: str) -> dict[str, Any] | None:
        self._refresh()
        return next((copy.deepcopy(d) for d in self._docs if d["id"] == wid), None)

    def subject_of(self, doc: dict[str, Any]) -> str:
        return self.sealer.open(doc["subject_sealed"], doc["id"], "subject")

    def _provides(self, caller: Caller, doc: dict[str, Any]) -> bool:
        return provides(self.catalog, caller, doc["dataset"])

    def for_provider(
        self, caller: Caller, *, dataset: str = "", status: str = ""
    ) -> list[dict[str, Any]]:
        self._refresh()
        return [
            self.view(d, for_provider=True)
            for d in self._docs
            if self._provides(caller, d)
            and (not dataset or d["dataset"] == dataset)
            and (not status or d["status"] == status)
        ]

    def review(
        self, caller: Caller, wid: str, review: str, reason: str, now: datetime
    ) -> dict[str, Any]:
        v = validation.Violations()
        if not wid:
            v.add("withdrawal_id", "is required", "WITHDRAWAL_ID_MISSING")
        if review not in REVIEWS:
            v.add("review", "must be uphold, reinstate or reprocess", "REVIEW_INVALID")
        why = v.check(text, reason, "reason", "say why, for the subject")
        v.raise_if_any()
        with self._mutate() as docs:
            doc = next((d for d in docs if d["id"] == wid), None)
            if doc is None or not self._provides(caller, doc):
                raise not_found("WITHDRAWAL_NOT_FOUND", "no such withdrawal for this caller")
            if doc["status"] != SUSPENDED:
                raise GovgwError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "WITHDRAWAL_REVIEWED",
                    f"the withdrawal is already reviewed ({doc['status']})",
                )
            at = _stamp(now)
            doc["status"] = REVIEWS[review]
            doc["review"] = {
                "by": caller.id,
                "department": caller.department,
                "at": at,
                "review": review,
                "reason": why,
            }
            doc["history"].append({"at": at, "actor": caller.id, "event": doc["status"]})
        return self.view(doc, for_provider=True)

    def view(self, doc: dict[str, Any], *, for_provider: bool) -> dict[str, Any]:
        wid = doc["id"]
        out = {
            k: doc[k]
            for k in ("id", "dataset", "provider", "status", "requested_at", "subject_type")
        }
        out.update(
            reason=self.sealer.open(doc["reason_sealed"], wid, "reason"),
            review=doc.get("review") or {},
            subject_key=self.subject_of(doc) if for_provider else "",
        )
        return out


def parse_review(value: str) -> str:
    if value not in REVIEWS:
        raise invalid("review", "must be uphold, reinstate or reprocess", "REVIEW_INVALID")
    return value
