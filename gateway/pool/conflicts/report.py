"""Conflicting values (R16): two providers hold different values for one subject's attribute.

Aba 2021 art. 29 and Aba 2024 art. 26 ask that where departments' data about
the same subject disagree, the disagreement is found and reported to the
coordinating department, which has it corrected at the source. The catalog
says which field holds which attribute concept (`"attribute": "person.name"`);
this module compares those fields across datasets, subject by subject, in the
strict forms of normalize.py, and grades each pair of values it lists
(compare.py) so the coordinator knows which provider to ask.

The join (paging.py has the order and the page token): each dataset but the
largest of a subject kind is walked subject by subject in blind-index order
(one subject's rows decrypted at a time), and for each subject the other
datasets are probed through *their* blind index of the same subject key. A
subject held by several walked datasets is compared when the first of them
is walked, and skipped in the later ones. The cost is one indexed probe per
walked row; the largest dataset (the population register) is never walked.
A page stops after SCAN_BUDGET subjects even if it is not full, so one call
never holds the server's event loop long (a few hundred milliseconds at
most); keep paging while a next_page_token comes back.

When was a value written? The pool keeps no time per row, only each
dataset's import history. A value shows its dataset's last import time (the
latest it can have been written; exactly then when that import replaced the
dataset whole, `written_at_import`), and the value(s) of the dataset imported
last are flagged `imported_last`.

Nothing raw leaves: each value is shown through the report treatment the
catalog names for its concept, the subject key through the one for its
subject kind, and the subject by its keyed hash (the one audit records use);
compare.py says what a pair's difference discloses and where it is withheld.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date

from gateway.catalog import Catalog, Concept, Dataset, Treatment
from gateway.errors import invalid
from gateway.keys import KeyRing
from gateway.pool.conflicts.compare import Difference, compare
from gateway.pool.conflicts.normalize import normalize
from gateway.pool.conflicts.paging import (
    Cursor,
    bad_token,
    dataset_orders,
    decode_token,
    encode_token,
    nothing_after,
    walk_steps,
)
from gateway.pool.store import Pool
from masking import MaskingContext, apply_treatment

# Subjects one page walks at most: about 0.1-0.2 s of work on the server.
SCAN_BUDGET = 1000
# The offline report runs on its own, in bigger steps.
OFFLINE_SCAN_BUDGET = 20_000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# Pairs one conflict lists at most (a subject with many rows in two registers).
MAX_PAIRS = 50
# How the masked subject key is shown when the catalog names no treatment.
_DEFAULT_SUBJECT_TREATMENT = Treatment("mask", {"keep_first": 6, "keep_last": 4})


@dataclass(frozen=True)
class HeldValue:
    """One provider's value of the attribute, as the report shows it."""

    provider: str
    dataset: str
    field: str
    masked_value: str
    value_group: str  # A, B, ...: values equal after normalization share a letter
    dataset_version: str
    # When the pool took in the dataset's last import: the pool keeps no
    # time per row, so this is the latest the row can have been written.
    imported_at: str
    # The dataset was imported after every other dataset holding a value here.
    imported_last: bool = False
    # That import replaced the dataset whole: the value was written at imported_at.
    written_at_import: bool = False


@dataclass(frozen=True)
class Conflict:
    subject_hash: str
    subject_masked: str
    subject_kind: str
    attribute: str
    values: tuple[HeldValue, ...]
    # Pairs of values of different datasets, each graded (compare.py).
    differences: tuple[Difference, ...] = ()

    def to_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc["values"] = [asdict(v) for v in self.values]
        doc["differences"] = [
            {**asdict(d), **{k: list(getattr(d, k)) for k in _LISTS}} for d in self.differences
        ]
        return doc


_LISTS = ("equal_after", "first_positions", "second_positions")


@dataclass(frozen=True)
class Page:
    conflicts: tuple[Conflict, ...]
    next_page_token: str
    subjects_scanned: int
    datasets: tuple[str, ...]  # the datasets compared


@dataclass(frozen=True)
class _Import:
    version: str
    imported_at: str
    replaced_all: bool


class ConflictFinder:
    """Pages of the conflicts report over one pool."""

    def __init__(self, pool: Pool, catalog: Catalog, keyring: KeyRing) -> None:
        self.pool = pool
        self.catalog = catalog
        self.keyring = keyring

    def check_attribute(self, attribute: str) -> None:
        if attribute and attribute not in self.catalog.concepts:
            raise invalid(
                "attribute",
                f"must be one of {', '.join(self.catalog.concepts)} (or empty for all)",
                "UNKNOWN_ATTRIBUTE",
            )

    def check_token(self, token: str, attribute: str) -> Cursor:
        """The token's cursor, or INVALID_ARGUMENT naming page_token."""
        cursor = decode_token(token, attribute, self.catalog)
        if cursor.key_version != self.pool.active_key_version:
            raise bad_token("the pool keys were rotated since it was issued; start again")
        return cursor

    def page(
        self,
        *,
        attribute: str = "",
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str = "",
        caller_id: str,
        today: date,
        scan_budget: int = SCAN_BUDGET,
    ) -> Page:
        self.check_attribute(attribute)
        if page_token:
            cursor = self.check_token(page_token, attribute)
        else:
            cursor = Cursor(
                dataset_orders(self.pool, self.catalog, attribute),
                0,
                b"",
                0,
                self.pool.active_key_version,
            )
        concepts = [
            c for c in self.catalog.concepts.values() if not attribute or c.name == attribute
        ]
        ctx = MaskingContext(caller_id, self.keyring.pseudonym_key, today, suite=self.keyring.suite)
        steps = walk_steps(cursor.orders)
        found: list[Conflict] = []
        scanned = 0
        step, after, skip = cursor.step, cursor.after, cursor.skip
        versions: dict[str, _Import] = {}
        with self.pool.snapshot():
            while step < len(steps) and len(found) < page_size and scanned < scan_budget:
                name, earlier, later = steps[step]
                exhausted = True
                for bidx, rows in self.pool.scan_subjects(name, after, inclusive=skip > 0):
                    if bidx != after:
                        skip = 0  # the subject the page stopped inside is gone
                    scanned += 1
                    entries = self._subject(name, rows, earlier, later, concepts, ctx, versions)
                    room = page_size - len(found)
                    if len(entries) - skip > room:
                        found.extend(entries[skip : skip + room])
                        after, skip = bidx, skip + room
                        exhausted = False
                        break
                    found.extend(entries[skip:])
                    after, skip = bidx, 0
                    if len(found) >= page_size or scanned >= scan_budget:
                        exhausted = False
                        break
                if exhausted:
                    step, after, skip = step + 1, b"", 0
        done = step >= len(steps)
        if not done and nothing_after(self.pool, steps, step, after, skip):
            done = True
        token = (
            ""
            if done
            else encode_token(
                Cursor(cursor.orders, step, after, skip, cursor.key_version), attribute
            )
        )
        return Page(
            conflicts=tuple(found),
            next_page_token=token,
            subjects_scanned=scanned,
            datasets=tuple(n for o in cursor.orders for n in o),
        )

    def all(self, *, attribute: str = "", caller_id: str, today: date) -> Iterator[Conflict]:
        """Every conflict, page after page (the offline report)."""
        token = ""
        while True:
            page = self.page(
                attribute=attribute,
                page_size=MAX_PAGE_SIZE,
                page_token=token,
                caller_id=caller_id,
                today=today,
                scan_budget=OFFLINE_SCAN_BUDGET,
            )
            yield from page.conflicts
            token = page.next_page_token
            if not token:
                return

    def _subject(
        self,
        walked: str,
        rows: list[dict[str, str]],
        earlier: tuple[str, ...],
        later: tuple[str, ...],
        concepts: list[Concept],
        ctx: MaskingContext,
        versions: dict[str, _Import],
    ) -> list[Conflict]:
        ds = self.catalog.datasets[walked]
        key = rows[0][ds.subject_field]
        # Compared already when the first dataset holding it was walked.
        if any(self.pool.read(e, key) for e in earlier):
            return []
        held = [(ds, rows)]
        for other in later:
            found = self.pool.read(other, key)
            if found:
                held.append((self.catalog.datasets[other], found))
        if len(held) < 2:
            return []
        out = []
        for concept in concepts:
            if concept.subject_kind != ds.subject_kind:
                continue
            raws: list[tuple[Dataset, str, str]] = []  # dataset, field, raw value
            for d, d_rows in held:
                f = next((f for f in d.fields if f.attribute == concept.name), None)
                if f is None:
                    continue
                for row in d_rows:
                    raw = row.get(f.name, "")
                    if raw:  # a blank is missing data, not a disagreement
                        raws.append((d, f.name, raw))
            # Values written alike agree; only the others are normalized (most
            # of the cost of a walk is normalizing addresses).
            if len({d.name for d, _, _ in raws}) < 2 or len({r for _, _, r in raws}) < 2:
                continue
            values: list[tuple[Dataset, str, str, str]] = []
            seen: set[tuple[str, str]] = set()
            for d, name, raw in raws:
                if (d.name, raw) not in seen:  # two rows alike are one value held
                    seen.add((d.name, raw))
                    values.append((d, name, raw, normalize(concept.kind, raw)))
            if len({v[3] for v in values}) < 2:
                continue
            imports = {d.name: self._import(d.name, versions) for d, _, _, _ in values}
            newest = max(i.imported_at for i in imports.values())
            tie = all(i.imported_at == newest for i in imports.values())
            groups: dict[str, str] = {}
            shown = []
            for d, field_name, raw, norm in values:
                group = groups.setdefault(norm, chr(ord("A") + len(groups)))
                imported = imports[d.name]
                shown.append(
                    HeldValue(
                        provider=d.provider,
                        dataset=d.name,
                        field=field_name,
                        masked_value=apply_treatment(concept.report, raw, ctx),
                        value_group=group,
                        dataset_version=imported.version,
                        imported_at=imported.imported_at,
                        imported_last=not tie and imported.imported_at == newest,
                        written_at_import=imported.replaced_all,
                    )
                )
            treatment = self.catalog.subject_key_report.get(
                ds.subject_kind, _DEFAULT_SUBJECT_TREATMENT
            )
            out.append(
                Conflict(
                    subject_hash=self.keyring.subject_hash(key),
                    subject_masked=apply_treatment(treatment, key, ctx),
                    subject_kind=ds.subject_kind,
                    attribute=concept.name,
                    values=tuple(shown),
                    differences=_differences(concept.kind, values),
                )
            )
        return out

    def _import(self, dataset: str, cache: dict[str, _Import]) -> _Import:
        if dataset not in cache:
            history = self.pool.versions(dataset)
            last = history[0] if history else {"version": "", "imported_at": "", "replace_all": 0}
            cache[dataset] = _Import(
                str(last["version"]), str(last["imported_at"]), bool(last["replace_all"])
            )
        return cache[dataset]


def _differences(kind: str, values: list[tuple[Dataset, str, str, str]]) -> tuple[Difference, ...]:
    """Each pair of values held by different datasets, graded; at most MAX_PAIRS."""
    out = []
    for i, (da, _, raw_a, norm_a) in enumerate(values):
        for j in range(i + 1, len(values)):
            db, _, raw_b, norm_b = values[j]
            if da.name != db.name and len(out) < MAX_PAIRS:
                out.append(compare(kind, i + 1, raw_a, norm_a, j + 1, raw_b, norm_b))
    return tuple(out)
