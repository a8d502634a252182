"""`govgw audit verify`: check an audit file's hash chain, streaming.

Each record must carry the hash of its own canonical JSON (else it was
edited), the next seq (else records were deleted, inserted or reordered) and
the previous record's hash as `prev` (else the chain was cut and re-joined).
The first record that fails is named by seq and line number; nothing after
it can be trusted, so checking stops there.

What a bare hash chain cannot show: records cut off the end, or a chain
rewritten from some record onward. Compare `head_hash` with a copy kept
elsewhere (a signed or off-site note of the head) to catch those.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.audit.log import GENESIS, canonical_json


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    records: int  # records that verified (all of them when ok)
    first_broken_seq: int | None  # the seq the chain expects at the break
    first_broken_line: int | None  # 1-based line number of the break
    problem: str
    torn_tail: bool  # a final line without newline: a crash mid-write, not a break
    head_seq: int = 0  # last verified record
    head_hash: str = GENESIS

    def describe(self) -> str:
        """One human line for the CLI."""
        tail = " (torn final line ignored: a crash mid-write)" if self.torn_tail else ""
        if self.ok:
            return (
                f"OK: {self.records} records, head seq {self.head_seq} hash {self.head_hash}{tail}"
            )
        return (
            f"BROKEN at record {self.first_broken_seq} (line {self.first_broken_line}): "
            f"{self.problem}; {self.records} records before it verified{tail}"
        )


def _check(raw: bytes, expected_seq: int, prev: str) -> tuple[str, str]:
    """(problem, hash) of one line; problem is "" when the record is sound."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return "line is not valid JSON", ""
    if not isinstance(rec, dict):
        return "line is not a JSON object", ""
    claimed = rec.pop("hash", None)
    if not isinstance(claimed, str):
        return "record has no hash", ""
    try:
        actual = hashlib.sha256(canonical_json(rec).encode()).hexdigest()
    except ValueError:
        actual = ""  # NaN or Infinity: never written by the log
    if actual != claimed:
        return "hash mismatch: the record was edited", claimed
    seq = rec.get("seq")
    if seq != expected_seq or isinstance(seq, bool):
        if isinstance(seq, int) and seq > expected_seq:
            found = f"found seq {seq}: record {expected_seq} is missing (deleted or reordered)"
        else:
            found = f"found seq {seq!r}: records were reordered or inserted"
        return f"seq gap: expected {expected_seq}, {found}", claimed
    if rec.get("prev") != prev:
        return (
            "prev mismatch: does not link to the record before it "
            "(a record was deleted or reordered, or the one before was rewritten)",
            claimed,
        )
    return "", claimed


PROGRESS_EVERY = 10_000  # lines between progress reports


def verify_chain(path: Path, progress: Callable[[int], None] | None = None) -> ChainReport:
    """Recompute every hash and link of an audit file; `progress(bytes)` now and then."""
    records = 0
    prev = GENESIS
    pending = 0  # bytes read since the last progress report
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if progress is not None:
                pending += len(raw)
                if lineno % PROGRESS_EVERY == 0:
                    progress(pending)
                    pending = 0
            if not raw.endswith(b"\n"):
                # Only the last line can lack its newline: the iterator
                # ends here. The writer truncates it on open.
                return ChainReport(True, records, None, None, "", True, records, prev)
            problem, digest = _check(raw, records + 1, prev)
            if problem:
                return ChainReport(
                    False, records, records + 1, lineno, problem, False, records, prev
                )
            records += 1
            prev = digest
    if progress is not None and pending:
        progress(pending)
    return ChainReport(True, records, None, None, "", False, records, prev)


def summary(files: list[dict[str, Any]], name: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """The report of several chains' checks (each a dict with ok, records, first_broken_*,
    problem, torn_tail): ok when all are, the first broken one named by `name`."""
    broken = next((f for f in files if not f["ok"]), None)
    return {
        "ok": broken is None,
        "records": sum(f["records"] for f in files),
        "first_broken_seq": broken["first_broken_seq"] if broken else None,
        "first_broken_line": broken["first_broken_line"] if broken else None,
        "problem": f"{name(broken)}: {broken['problem']}" if broken else "",
        "torn_tail": any(f["torn_tail"] for f in files),
        "files": files,
    }
