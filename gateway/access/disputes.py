"""Fields under correction (校核 pending, R8): "service must not be refused meanwhile".

While a subject's correction of a field is filed and not yet answered, calls
that use that field say so, so a service-counter clerk knows the value is
disputed and accepts the citizen's valid document instead of refusing
(Aba 2024 art. 22; Aba 2021 art. 28; Yichuan art. 19). The indication names
the field and the correction's filing date (China time), never the statement.

The corrections live in SQLite; the hot path must not open a database per
call. So every change of a correction's status (`CorrectionStore`) rewrites,
inside its transaction, a small index of the pending ones
(`corrections.pending.json`: dataset -> keyed subject hash -> field -> filing
date), replaced atomically. Readers stat it on every call, as the withdrawal
store does, so a filing is indicated from the very next call in every worker,
and an answer stops the indication as quickly. With no pending correction on a
dataset the check is one stat and one dict lookup: no subject hash is computed.

On PostgreSQL (a database URL) there is no file: a change of a correction's status
announces the store `corrections`, and each node's `DisputedFields` rebuilds its
in-memory index from the table in the storage's listener thread, so the call
itself reads memory only and every node indicates a filing within the listener's
delay (well under 1 s).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.access.deadlines import china_date
from gateway.files import replace_atomically
from gateway.storage import Storage
from gateway.storage.documents import Tx, shared

log = logging.getLogger("govgw.disputes")

# dataset -> subject hash -> field -> filing date (YYYY-MM-DD, China time)
Index = dict[str, dict[str, dict[str, str]]]
STORE = "corrections"  # the name their changes are announced under
_EMPTY: Mapping[str, str] = {}


def index_path(corrections: Path) -> Path:
    """Where the pending-corrections index of a corrections database lives."""
    return corrections.with_name(corrections.stem + ".pending.json")


def filing_date(filed_at: str) -> str:
    return china_date(datetime.fromisoformat(filed_at.replace("Z", "+00:00"))).isoformat()


def build_index(db: Any, pending: str) -> Index:
    """From the corrections table (`db` executes `?` placeholders on either backend)."""
    index: Index = {}
    rows = db.execute(
        "SELECT dataset, subject_hash, field, filed_at FROM corrections WHERE status=?"
        " ORDER BY filed_at",
        (pending,),
    )
    for dataset, subject_hash, field, filed_at in rows:
        index.setdefault(dataset, {}).setdefault(subject_hash, {})[field] = filing_date(filed_at)
    return index


def publish(path: Path, index: Index) -> None:
    """Replace the index atomically (temp file, fsync, rename): a reader sees the
    old index or the new one, never half of one."""
    replace_atomically(path, json.dumps({"pending": index}, sort_keys=True).encode("utf-8"))


class DisputedFields:
    """The read side: which fields of a subject's record are under correction."""

    def __init__(
        self, path: Path, subject_hash: Callable[[str], str], storage: Storage | None = None
    ) -> None:
        self.path = Path(path)
        self.subject_hash = subject_hash
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._index: Index = {}
        self.storage = shared(storage)
        if self.storage is not None:
            self._reload()  # a failure here is a start that fails, never a silent gap
            self.storage.subscribe(STORE, self._reload)

    def _reload(self) -> None:
        """Rebuild the index from the table (PostgreSQL), in the listener thread."""
        storage = self.storage
        assert storage is not None
        with storage.transaction() as db:
            index = build_index(Tx(db, storage.sql, lambda: None), "pending")
        self._index = index  # one reference swap: a reader sees the old or the new

    def __call__(self, dataset: str, subject_key: str) -> Mapping[str, str]:
        """field -> filing date of the pending corrections of this subject in this dataset."""
        self._refresh()
        by_subject = self._index.get(dataset)
        if not by_subject:
            return _EMPTY
        return by_subject.get(self.subject_hash(subject_key), _EMPTY)

    def pending(self, dataset: str) -> Mapping[str, Mapping[str, str]]:
        """subject hash -> field -> filing date of a dataset's pending corrections, as
        of now: a batch reads it once per call instead of a stat per item (its items
        are answered within the call, as a unary call's one item is)."""
        self._refresh()
        return self._index.get(dataset) or {}

    def _refresh(self) -> None:
        if self.storage is not None:
            return  # kept current by the announcements
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._index = None, {}
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                index = {
                    str(ds): {str(h): dict(fields) for h, fields in subjects.items()}
                    for ds, subjects in doc["pending"].items()
                }
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                # A broken index: keep the last one read (indicating a little too much
                # is harmless; the next correction's change rewrites it).
                log.error("pending-corrections index unreadable: %s", type(e).__name__)
                return
            self._index, self._stamp = index, stamp


def disputed(
    lookup: Callable[[str, str], Mapping[str, str]] | None,
    dataset: str,
    subject_key: str,
    used: Iterable[str],
) -> list[tuple[str, str, str]]:
    """(dataset, field, filing date) for each field the call used that is under
    correction. `used` is what the caller's plan let the call use: a field outside
    it is never named, so the indication discloses nothing the plan withholds."""
    if lookup is None:
        return []
    pending = lookup(dataset, subject_key)
    if not pending:
        return []
    return [(dataset, f, pending[f]) for f in used if f in pending]
