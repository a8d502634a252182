"""Grants (授权): conditional access bound to caller, dataset, fields, purpose, expiry.

The store is one JSON file, `{"version": n, "grants": [...]}`. The policy reads
the grants as `data.grants`; the version (bumped on every change) keys the
plan cache, so a revoked grant stops working on the next call.

A server and the `govgw` CLI may both write the file: writes take an flock on
a sibling lock file, re-read under it, and replace the file atomically (temp
file, fsync, rename), so a reader never sees half a file and no update is
lost. A running server notices a change made by another process by stat-ing
the file, at most once per `refresh_interval` seconds, so the check stays off
the hot path.

On a shared storage (PostgreSQL, storage/) the same list lives in one row of the
`documents` table instead: a write locks the row (SELECT … FOR UPDATE), replaces it
and announces the change in the same transaction, and the change check compares the
storage's stamp of the store (bumped by the announcement) instead of a file stat.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.files import exclusive, replace_atomically
from gateway.storage import Storage

log = logging.getLogger(__name__)

ACTIVE = "active"
REVOKED = "revoked"
SUSPENDED = "suspended"


class GrantError(ValueError):
    """A grant operation was refused (bad argument, unknown id)."""


def rfc3339(value: datetime | str) -> str:
    """Normalize an expiry to RFC 3339 UTC with a Z, as the policy compares it."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as e:
            raise GrantError(f"expires_at is not an RFC 3339 time: {e}") from e
    if value.tzinfo is None:
        raise GrantError("expires_at needs a time zone")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class JsonListStore:
    """A list of JSON objects in one file, `{"version": n, KEY: [...]}`, shared by
    processes: the mechanics described in the module doc. Subclasses name KEY."""

    key = "items"

    def __init__(
        self, path: Path, *, refresh_interval: float = 0.5, storage: Storage | None = None
    ) -> None:
        self.path = Path(path)
        self.refresh_interval = refresh_interval
        # A shared database holds the list; without one (or on SQLite) the file does.
        self.storage = storage if storage is not None and storage.shared else None
        self._lock = threading.RLock()
        self._version = 0
        self._items: list[dict[str, Any]] = []
        self._stamp: Any = None  # (inode, mtime_ns, size) last read, or the storage's stamp
        self._checked = float("-inf")  # monotonic time of the last stat
        self._load()
        if self.storage is not None:  # reloaded in the listener thread, off the event loop
            self.storage.subscribe(self.key, self.reload)

    # ----- reading -----------------------------------------------------------------------

    @property
    def version(self) -> int:
        self._refresh()
        return self._version

    def list(self) -> list[dict[str, Any]]:
        return self.snapshot()[1]

    def snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """(version, items) read together, so a cache key and its data agree."""
        self._refresh()
        with self._lock:
            return self._version, copy.deepcopy(self._items)

    def get(self, item_id: str) -> dict[str, Any] | None:
        return next((g for g in self.list() if g["id"] == item_id), None)

    @contextmanager
    def _mutate(self) -> Iterator[list[dict[str, Any]]]:
        """Read-modify-write under the thread lock and the cross-process file lock
        (or, on a shared database, the row's lock)."""
        if self.storage is not None:
            with self._lock:
                with self._db_mutate() as items:
                    yield items
                self._load()
            return
        with self._lock, self._file_lock():
            self._load()  # another process may have written since our last look
            items = copy.deepcopy(self._items)
            yield items  # an exception in the body leaves the file untouched
            self._write(self._version + 1, items)
            self._load()

    # ----- the shared database --------------------------------------------------------

    @contextmanager
    def _db_mutate(self) -> Iterator[list[dict[str, Any]]]:
        storage = self.storage
        assert storage is not None
        with storage.transaction() as db:
            db.execute(
                storage.sql(
                    "INSERT INTO documents (name, version, items) VALUES (?, 0, '[]')"
                    " ON CONFLICT (name) DO NOTHING"
                ),
                (self.key,),
            )
            version, items = db.execute(
                storage.sql("SELECT version, items FROM documents WHERE name = ? FOR UPDATE"),
                (self.key,),
            ).fetchone()
            items = list(items)
            yield items  # an exception in the body rolls the transaction back
            text = json.dumps(items, ensure_ascii=False, sort_keys=True)
            db.execute(
                storage.sql("UPDATE documents SET version = ?, items = ?::jsonb WHERE name = ?"),
                (int(version) + 1, text, self.key),
            )
            storage.announce(db, self.key)

    def _db_load(self) -> None:
        storage = self.storage
        assert storage is not None
        stamp = storage.stamp(self.key)  # before reading: a later change bumps it again
        with storage.transaction() as db:
            row = db.execute(
                storage.sql("SELECT version, items FROM documents WHERE name = ?"), (self.key,)
            ).fetchone()
        self._version, self._items = (int(row[0]), list(row[1])) if row else (0, [])
        self._stamp = stamp

    def _current_stamp(self) -> Any:
        return _stamp(self.path) if self.storage is None else self.storage.stamp(self.key)

    # ----- the file ----------------------------------------------------------------------

    def _file_lock(self) -> contextlib.AbstractContextManager[None]:
        return exclusive(self.path)

    def _write(self, version: int, items: list[dict[str, Any]]) -> None:
        doc = {"version": version, self.key: items}
        text = json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True)
        replace_atomically(self.path, text.encode("utf-8"))

    def reload(self) -> None:
        """Look at the file now, whatever the interval (e.g. right after the CLI wrote)."""
        self._refresh(force=True)

    def _refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.refresh_interval:
            return
        with self._lock:
            self._checked = now
            # A forced look at a shared database reads it: the announcement of another
            # node's last write may still be on its way to this node's listener.
            forced_read = force and self.storage is not None
            if not forced_read and self._current_stamp() == self._stamp:
                return
            try:
                self._load()
            except (OSError, ValueError, TypeError, AttributeError) as e:
                # A hand-edited, broken file: keep serving the last good items and
                # retry on the next check; writers refuse to overwrite it (_mutate).
                log.error(
                    "store %s unreadable, keeping version %d: %s",
                    self.path,
                    self._version,
                    type(e).__name__,
                )

    def _load(self) -> None:
        with self._lock:
            self._checked = time.monotonic()
            if self.storage is not None:
                self._db_load()
                return
            stamp = _stamp(self.path)
            if stamp is None:
                self._version, self._items, self._stamp = 0, [], None
                return
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            self._version = int(doc.get("version", 0))
            self._items = list(doc.get(self.key, []))
            self._stamp = stamp


class GrantStore(JsonListStore):
    key = "grants"

    # ----- changing ----------------------------------------------------------------------

    def add(
        self,
        caller: str,
        dataset: str,
        fields: Sequence[str],
        purpose: str,
        expires_at: datetime | str,
        *,
        application_id: str = "",
        emergency_id: str = "",
        now: datetime | None = None,
    ) -> dict[str, Any]:
        for name, value in (("caller", caller), ("dataset", dataset), ("purpose", purpose)):
            if not isinstance(value, str) or not value.strip():
                raise GrantError(f"{name} is required")
        if isinstance(fields, str) or not fields or not all(isinstance(f, str) for f in fields):
            raise GrantError("fields must be a non-empty list of field names")
        grant = {
            "id": "g-" + secrets.token_hex(8),
            "caller": caller,
            "dataset": dataset,
            "fields": sorted(set(fields)),
            "purpose": purpose,
            "expires_at": rfc3339(expires_at),
            "status": ACTIVE,
            "created_at": _now(now),
        }
        if application_id:
            grant["application_id"] = application_id
        if emergency_id:  # usable only while that emergency is active (policies/grants.rego)
            grant["emergency_id"] = emergency_id
        with self._mutate() as grants:
            grants.append(grant)
        return copy.deepcopy(grant)

    def revoke(self, grant_id: str, reason: str, now: datetime | None = None) -> dict[str, Any]:
        with self._mutate() as grants:
            grant = next((g for g in grants if g.get("id") == grant_id), None)
            if grant is None:
                raise GrantError(f"no grant {grant_id}")
            grant.update(status=REVOKED, revoked_at=_now(now), revoke_reason=reason)
            return copy.deepcopy(grant)

    def set_status(
        self, grant_id: str, status: str, reason: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """Suspend (misuse), reinstate or revoke a grant; revoked is final."""
        if status not in (ACTIVE, SUSPENDED, REVOKED):
            raise GrantError(f"unknown grant status {status!r}")
        if status == REVOKED:
            return self.revoke(grant_id, reason, now)
        with self._mutate() as grants:
            grant = next((g for g in grants if g.get("id") == grant_id), None)
            if grant is None:
                raise GrantError(f"no grant {grant_id}")
            if grant.get("status") == REVOKED:
                raise GrantError(f"grant {grant_id} is revoked")
            grant.update(status=status, status_reason=reason, status_changed_at=_now(now))
            return copy.deepcopy(grant)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _now(now: datetime | None = None) -> str:
    """The caller's time (the gateway's clock) if given, else the wall clock."""
    return (
        (now or datetime.now(UTC))
        .astimezone(UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )
