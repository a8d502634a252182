"""Suspending the opening of a whole dataset on a security risk (撤回, R9).

Aba 2024 art. 33: opened data that infringes rights *or poses a security risk*
is suspended at once, then withdrawn or reprocessed. A subject's withdrawal
(`withdrawals`) hides one record; this hides a dataset: its provider (or an
administrator) suspends the opening with a reason, and from the next decision
in every worker process the open route answers PERMISSION_DENIED
OPENING_SUSPENDED (the suspension is about the dataset, not a person, so it may
say so). Sharing to agencies is untouched. The provider then withdraws the
opening (OPENING_WITHDRAWN until reopened) and reopens it, usually after
reprocessing (e.g. desensitizing further).

The policy decides, not a check in the services: the suspensions in force are
policy data (`data.suspensions`, dataset -> {id, status}), and the store's
version keys the plan cache as the grants' does, so plans of the open route
are re-decided on the next call. The store is a `JsonListStore` read with no
refresh interval: one stat per decision, so "at once" holds in every worker. With a
database URL it is a row of PostgreSQL's `documents` table, reloaded in memory when
announced, so every node decides with a change within the listener's delay.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from gateway import validation
from gateway.access.applications import _stamp, provides, text
from gateway.callers import Caller
from gateway.catalog import Catalog
from gateway.errors import GovgwError, not_found
from gateway.grants import JsonListStore
from gateway.grants import _stamp as file_stamp
from gateway.storage import Storage

SUSPENDED, WITHDRAWN, REOPENED = "suspended", "withdrawn", "reopened"
STATUSES = (SUSPENDED, WITHDRAWN, REOPENED)
IN_FORCE = frozenset({SUSPENDED, WITHDRAWN})


def _failed(reason: str, message: str, **metadata: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.FAILED_PRECONDITION, reason, message, metadata=metadata)


class OpeningSuspensionStore(JsonListStore):
    key = "suspensions"

    def __init__(self, path: Path, catalog: Catalog, storage: Storage | None = None) -> None:
        # No refresh interval: a suspension narrows access, so every decision looks.
        super().__init__(path, refresh_interval=0.0, storage=storage)
        self.catalog = catalog

    @property
    def version(self) -> int:
        if self.storage is not None:  # kept current by the announcements: memory only
            return self._version
        # Read by every decision: one stat and no lock unless the file changed.
        if file_stamp(self.path) != self._stamp:
            self._refresh(force=True)
        return self._version

    # ----- the policy's view -------------------------------------------------------------

    def policy_view(self) -> tuple[int, dict[str, dict[str, str]]]:
        """(version, data.suspensions): the suspensions in force, by dataset."""
        version, items = self.snapshot()
        return version, {
            s["dataset"]: {"id": s["id"], "status": s["status"]}
            for s in items
            if s["status"] in IN_FORCE
        }

    # ----- who may act -------------------------------------------------------------------

    def _may_act(self, caller: Caller, dataset: str) -> bool:
        if self.catalog.get(dataset) is None:
            return False
        return caller.kind == "admin" or provides(self.catalog, caller, dataset)

    # ----- transitions -------------------------------------------------------------------

    def suspend(self, caller: Caller, dataset: str, reason: str, now: datetime) -> dict[str, Any]:
        v = validation.Violations()
        ds = v.check(validation.dataset, self.catalog, dataset)
        why = v.check(text, reason, "reason", "say what the security risk is")
        v.raise_if_any()
        assert ds is not None and why is not None
        if not self._may_act(caller, ds.name):
            raise GovgwError(
                grpc.StatusCode.PERMISSION_DENIED,
                "PROVIDER_REQUIRED",
                f"only the provider of {ds.name} or an administrator suspends its opening",
                metadata={"dataset": ds.name},
            )
        if ds.open_class == "none":
            raise _failed(
                "DATASET_NOT_OPEN",
                f"dataset {ds.name} is not opened to the public: there is nothing to suspend",
                dataset=ds.name,
            )
        at = _stamp(now)
        doc = {
            "id": "os-" + secrets.token_hex(8),
            "dataset": ds.name,
            "provider": ds.provider,
            "status": SUSPENDED,
            "reason": why,
            "suspended_at": at,
            "reprocessed": False,
            "history": [_event(caller, at, SUSPENDED, why)],
        }
        with self._mutate() as items:
            for s in items:
                if s["dataset"] == ds.name and s["status"] in IN_FORCE:
                    raise GovgwError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        "SUSPENSION_IN_FORCE",
                        f"the opening of {ds.name} is already {s['status']}",
                        metadata={"dataset": ds.name, "suspension_id": s["id"]},
                    )
            items.append(doc)
        return doc

    def withdraw(self, caller: Caller, sid: str, reason: str, now: datetime) -> dict[str, Any]:
        return self._move(caller, sid, reason, now, {SUSPENDED}, WITHDRAWN)

    def reopen(
        self, caller: Caller, sid: str, reason: str, now: datetime, *, reprocessed: bool
    ) -> dict[str, Any]:
        return self._move(caller, sid, reason, now, IN_FORCE, REOPENED, reprocessed=reprocessed)

    def _move(
        self,
        caller: Caller,
        sid: str,
        reason: str,
        now: datetime,
        sources: frozenset[str] | set[str],
        target: str,
        *,
        reprocessed: bool = False,
    ) -> dict[str, Any]:
        v = validation.Violations()
        if not sid:
            v.add("suspension_id", "is required", "SUSPENSION_ID_MISSING")
        why = v.check(text, reason, "reason", f"say why the opening is {target}")
        v.raise_if_any()
        with self._mutate() as items:
            doc = next((s for s in items if s["id"] == sid), None)
            if doc is None or not self._may_act(caller, doc["dataset"]):
                # Another provider's suspension is as absent as one that does not exist.
                raise not_found("SUSPENSION_NOT_FOUND", "no such suspension for this caller")
            if doc["status"] not in sources:
                raise _failed(
                    "SUSPENSION_STATUS",
                    f"the opening is {doc['status']}; it cannot become {target}",
                    suspension_id=sid,
                )
            doc["status"] = target
            if target == REOPENED:
                doc["reprocessed"] = reprocessed
            doc["history"].append(_event(caller, _stamp(now), target, why or ""))
            result = dict(doc)
        return result

    # ----- reading -----------------------------------------------------------------------

    def visible(
        self, caller: Caller, *, dataset: str = "", status: str = ""
    ) -> list[dict[str, Any]]:
        return [
            s
            for s in self.list()
            if self._may_act(caller, s["dataset"])
            and (not dataset or s["dataset"] == dataset)
            and (not status or s["status"] == status)
        ]


def _event(caller: Caller, at: str, event: str, reason: str) -> dict[str, str]:
    return {
        "at": at,
        "by": caller.id,
        "department": caller.department,
        "event": event,
        "reason": reason,
    }
