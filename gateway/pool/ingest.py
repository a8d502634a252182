"""Ingestion (归集): load a provider's JSONL or CSV file into one dataset.

Each row is validated; rejected rows are reported by line, field and reason
and are not written; the accepted rows land in one transaction, so a crash
mid-import leaves the pool as it was. strict=True turns any rejection into
"write nothing".
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.pool.store import Pool
from gateway.pool.validate import SINGLE_ROW_DATASETS, validate_row

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


@dataclass(frozen=True)
class Rejection:
    line: int  # 1-based line of the file where the record starts
    field: str  # "" when the whole line is at fault (bad JSON, extra CSV values)
    reason: str  # UPPER_SNAKE code, e.g. ID_NUMBER_CHECK_DIGIT
    description: str = ""  # in words; never contains the value


@dataclass
class IngestReport:
    dataset: str
    accepted: int = 0  # rows written (0 when strict mode refused the batch)
    rejected: list[Rejection] = field(default_factory=list)
    version: str = ""  # the dataset's version after the import (unchanged if nothing written)
    written: bool = False

    @property
    def rejected_lines(self) -> int:
        return len({r.line for r in self.rejected})

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (what `govgw pool import --json` prints)."""
        doc = asdict(self)
        doc["rejected_lines"] = self.rejected_lines
        return doc


class _LineError(Exception):
    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | _LineError]]:
    # Read bytes so that one line in a wrong encoding is one rejection, not a
    # failed import.
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield n, _LineError("ENCODING", "line is not valid UTF-8")
                continue
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                yield n, _LineError("JSON_MALFORMED", "line is not valid JSON")
                continue
            if not isinstance(record, dict):
                yield n, _LineError("RECORD_NOT_OBJECT", "line is not a JSON object")
                continue
            yield n, record


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | _LineError]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        # Usually a GBK export from a spreadsheet; say how to fix it.
        raise ValueError(
            f"{path.name} is not UTF-8 (byte {e.start}); convert it, e.g. `iconv -f GBK -t UTF-8`"
        ) from e
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    if len(set(header)) != len(header) or "" in header:
        raise ValueError(f"{path.name}: the header row has empty or repeated column names")
    start = reader.line_num + 1
    for values in reader:
        line, start = start, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header):
            yield line, _LineError("CSV_EXTRA_VALUES", "has more values than the header")
            continue
        yield line, dict(zip(header, values, strict=False))


def ingest_file(
    pool: Pool,
    dataset: str,
    path: Path,
    *,
    fmt: str | None = None,
    replace_all: bool = False,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Validate a file and write its valid rows to `dataset` in one transaction.

    A subject named twice in a single-row dataset is rejected on every line
    that names it: the pool cannot tell which line is true (R16).
    Nothing is written when no row is accepted, so a file in which every row
    is bad never wipes a dataset, even with replace_all.
    """
    ds = pool.catalog.get(dataset)
    if ds is None:
        raise ValueError(f"unknown dataset {dataset!r}")
    path = Path(path)
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"cannot tell the format of {path.name}: use .jsonl or .csv, or pass fmt")
    records = _jsonl_records(path) if fmt == "jsonl" else _csv_records(path)

    report = IngestReport(dataset=dataset)
    accepted: list[tuple[int, dict[str, str]]] = []
    lines_of: dict[str, list[int]] = {}
    for line, record in records:
        if isinstance(record, _LineError):
            report.rejected.append(Rejection(line, "", record.reason, record.description))
            continue
        row, problems = validate_row(ds, record)
        if problems:
            report.rejected.extend(
                Rejection(line, p.field, p.reason, p.description) for p in problems
            )
            continue
        accepted.append((line, row))
        lines_of.setdefault(row[ds.subject_field], []).append(line)

    if dataset in SINGLE_ROW_DATASETS:
        duplicated = {k: lines for k, lines in lines_of.items() if len(lines) > 1}
        if duplicated:
            kept = []
            for line, row in accepted:
                lines = duplicated.get(row[ds.subject_field])
                if lines is None:
                    kept.append((line, row))
                    continue
                others = ", ".join(str(n) for n in lines if n != line)
                report.rejected.append(
                    Rejection(
                        line,
                        ds.subject_field,
                        "DUPLICATE_SUBJECT",
                        f"the same subject is also on line {others}",
                    )
                )
            accepted = kept
    report.rejected.sort(key=lambda r: r.line)

    if accepted and not (strict and report.rejected):
        rows = (row for _, row in accepted)
        report.version = pool.write_normalized(
            dataset, rows if progress is None else _counted(rows, progress), replace_all=replace_all
        )
        report.accepted = len(accepted)
        report.written = True
    else:
        report.version = pool.dataset_version(dataset)
    return report


def _counted(
    rows: Iterable[dict[str, str]], progress: Callable[[int], None]
) -> Iterator[dict[str, str]]:
    """The rows, reporting every PROGRESS_EVERY written (the write is what takes long:
    each row is sealed)."""
    n = 0
    for row in rows:
        yield row
        n += 1
        if n == PROGRESS_EVERY:
            progress(n)
            n = 0
    if n:
        progress(n)


PROGRESS_EVERY = 1000
