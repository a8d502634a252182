"""LookupService: desensitized records, only the fields the plan allows."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from govgw.v1 import common_pb2, lookup_pb2

from gateway import release, subjects, validation
from gateway.call import Exec, Outcome, Request
from gateway.catalog import Dataset
from gateway.pipeline import Parts
from gateway.plan import LOOKUP, Plan
from gateway.routes import Answer, Incoming, Route, rows_of
from gateway.services.common import disputed_audit, timestamp

MAX_BATCH = 1000


class LookupService:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        if any(f.free_text for ds in self.parts.catalog.datasets.values() for f in ds.fields):
            # Building the free-text analyzer takes about a second (presidio
            # imports): do it now, off the event loop, not in the first lookup.
            threading.Thread(
                target=_warm_text_analyzer, name="pii-text-warmup", daemon=True
            ).start()

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(lookup_pb2.DESCRIPTOR, "LookupService")
        return [
            row(
                "Lookup",
                LOOKUP,
                self.parse_lookup,
                self.lookup,
                subject_keys=True,
                answer=Answer.RECORD,
            ),
            # Streams its items, each subject's audit record durable before the first
            # is sent. Up to 1,000 pool reads: in a worker thread, so a batch does not
            # hold the event loop (and every other call) for its whole length.
            row(
                "BatchLookup",
                LOOKUP,
                self.parse_batch,
                self.batch_lookup,
                subject_keys=True,
                answer=Answer.RECORD,
                in_thread=True,
            ),
        ]

    def parse_lookup(self, request: lookup_pb2.LookupRequest, _in: Incoming) -> Request[Dataset]:
        ds, keys, fields, purpose = self._parse_common(
            request.dataset, [request.subject_key], "subject_key", request.fields, request.purpose
        )
        return Request(purpose, (ds.name,), tuple(keys), fields, payload=ds)

    def lookup(self, ex: Exec[Dataset]) -> Outcome[lookup_pb2.LookupResponse]:
        ds = ex.request.payload
        plan = ex.plans[ds.name]
        released = release.fields(ds, plan, ex.request.fields)
        rows = release.read(self.parts, ex, ds.name, ex.request.subjects[0])
        if not rows:
            # An allowed lookup reveals existence anyway (a hit returns data);
            # out-of-region records answer the same as absent ones.
            raise release.absent(ex, ds.name)
        disputed = release.disputed_fields(self.parts, ds.name, ex.request.subjects[0], released)
        response = lookup_pb2.LookupResponse(
            records=self._records(ex, rows, released, plan, disputed),
            provenance=self._provenance(ds, ex),
            request_id=ex.request_id,
            policy_version=ex.policy_version,
        )
        return Outcome(response, audit=disputed_audit(disputed))

    def parse_batch(
        self, request: lookup_pb2.BatchLookupRequest, _in: Incoming
    ) -> Request[Dataset]:
        ds, keys, fields, purpose = self._parse_common(
            request.dataset,
            list(request.subject_keys),
            "subject_keys",
            request.fields,
            request.purpose,
        )
        return Request(purpose, (ds.name,), tuple(keys), fields, payload=ds)

    def batch_lookup(self, ex: Exec[Dataset]) -> Outcome[list[lookup_pb2.BatchLookupResponse]]:
        ds = ex.request.payload
        plan = ex.plans[ds.name]
        released = release.fields(ds, plan, ex.request.fields)
        provenance = self._provenance(ds, ex)
        items = []
        misses = []
        for i, key in enumerate(ex.request.subjects):
            rows = release.read(self.parts, ex, ds.name, key)
            # Only for a record that is released: no record, no indication.
            disputed = release.disputed_fields(self.parts, ds.name, key, released) if rows else []
            misses.append(not rows)
            items.append(
                lookup_pb2.BatchLookupResponse(
                    index=i,
                    records=self._records(ex, rows, released, plan, disputed),
                    provenance=provenance,
                    found=bool(rows),
                    request_id=ex.request_id,
                )
            )
        return Outcome(items, misses=tuple(misses))

    def _parse_common(
        self,
        dataset_name: str,
        keys: Sequence[str],
        keys_field: str,
        fields: Sequence[str],
        purpose_text: str,
    ) -> tuple[Dataset, list[str], tuple[str, ...], str]:
        v = validation.Violations()
        purpose = v.check(validation.purpose, purpose_text)
        ds = v.check(validation.dataset, self.parts.catalog, dataset_name)
        normalized: list[str] = []
        if keys_field == "subject_keys":
            if not keys:
                v.add(keys_field, "name at least one subject", "SUBJECT_KEYS_MISSING")
            elif len(keys) > MAX_BATCH:
                v.add(keys_field, f"at most {MAX_BATCH} subjects per call", "BATCH_TOO_LARGE")
        if ds is not None:
            for i, key in enumerate(keys[:MAX_BATCH]):
                path = keys_field if keys_field == "subject_key" else f"{keys_field}[{i}]"
                k = v.check(subjects.normalize_subject_key, ds.subject_kind, key, path)
                if k is not None:
                    normalized.append(k)
            names = v.check(validation.field_names, ds, list(fields))
        v.raise_if_any()
        assert ds is not None and purpose is not None
        return ds, normalized, names or (), purpose

    def _records(
        self,
        ex: Exec[Dataset],
        rows: Sequence[Mapping[str, str]],
        released: Sequence[str],
        plan: Plan,
        disputed: Sequence[common_pb2.DisputedField] = (),
    ) -> list[lookup_pb2.Record]:
        return [
            lookup_pb2.Record(
                fields=[
                    lookup_pb2.FieldValue(name=f.name, value=f.value, treatment=f.operator)
                    for f in row
                ],
                disputed_fields=disputed,
            )
            for row in release.masked(self.parts, ex, rows, released, plan)
        ]

    def _provenance(self, ds: Dataset, ex: Exec) -> common_pb2.Provenance:
        return common_pb2.Provenance(
            source_department=ds.provider,
            dataset=ds.name,
            dataset_version=self.parts.pool.dataset_version(ds.name),
            retrieved_at=timestamp(ex.now),
        )


def _warm_text_analyzer() -> None:
    from masking.text.analyzer import text_analyzer

    text_analyzer()
