"""`govgw verify batch` and the JSONL side of `govgw receipt verify`.

govgw verify batch --input FILE --purpose P --out OUT.jsonl [--batch-size N]
    FILE: JSONL ({"name": ..., "id_number": ...} per line) or CSV with a header
    (name,id_number). OUT: one JSON line per input line, in order: the result
    (MATCH / NO_MATCH / REFUSED with its reason and fields) and the item's receipt
    with its Merkle proof and commitment salt, in the receipt file format.
govgw receipt verify --key-file KEYS OUT.jsonl
    every line's receipt checked offline; exit 1 if any line fails.

Both stream: the input is read as the gateway takes it and the output written
as results arrive, so a file of a million lines is never held in memory.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.cli_common import client
from clients.progress import Progress
from clients.receipts import ReceiptInvalid, SignedReceipt, load_public_keys, verify_receipt
from clients.sdk import GovgwClientError
from clients.sdk.batch import CALL_ITEMS, IN_FLIGHT, MAX_BATCH

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers

FIELDS = ("name", "id_number")


def read_items(path: Path) -> Iterator[dict[str, str]]:
    """The input's items, one per line, lazily. A line that does not parse is sent
    as an empty item, so the gateway refuses it by field and OUT keeps one line
    per input line."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        if _is_csv(path):
            for row in csv.DictReader(f):
                yield {k: (row.get(k) or "") for k in FIELDS}
            return
        for line in f:
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                doc = {}
            if not isinstance(doc, dict):
                doc = {}
            yield {k: str(doc.get(k) or "") for k in FIELDS}


def _is_csv(path: Path) -> bool:
    with path.open(encoding="utf-8-sig") as f:
        return path.suffix.lower() == ".csv" or not f.readline().lstrip().startswith("{")


def count_lines(path: Path) -> int:
    """Items in the input, for the progress bar's total (one streaming pass)."""
    with path.open("rb") as f:
        lines = sum(1 for line in f if line.strip())
    return max(lines - 1, 0) if _is_csv(path) else lines


def run_batch(args: argparse.Namespace, h: CliHelpers) -> int:
    counts = {"MATCH": 0, "NO_MATCH": 0, "REFUSED": 0}
    quiet = bool(args.json)
    total = None if quiet else count_lines(args.input)
    try:
        with (
            client(args) as gw,
            args.out.open("w", encoding="utf-8") as out,
            Progress("verify batch", total=total, unit="items", quiet=quiet) as progress,
        ):
            results = gw.verify_identity_batch(
                read_items(args.input),
                purpose=args.purpose,
                batch_size=args.batch_size,
                in_flight=args.in_flight,
            )
            for r in results:
                line = r.to_json()
                counts[line["result"]] += 1
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                progress()
    except GovgwClientError as e:
        return h.fail(args, e.to_json(), f"error: {e}")
    summary = {"out": str(args.out), "items": sum(counts.values()), **counts}
    h.emit(
        args,
        summary,
        lambda: (
            f"{summary['items']:,} items: {counts['MATCH']:,} MATCH, "
            f"{counts['NO_MATCH']:,} NO_MATCH, {counts['REFUSED']:,} refused -> {args.out}"
        ),
    )
    return 0


def verify_lines(
    path: Path, keys: Any, progress: Callable[[int], None]
) -> tuple[int, list[dict[str, Any]]]:
    """Check every line of a `verify batch` output: its receipt's signature (or batch
    proof), that the receipt says the line's result, and that lines are in order.
    Returns (lines checked, failures); a refused line carries no receipt to check."""
    failures: list[dict[str, Any]] = []
    checked = 0
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            checked += 1
            progress(1)
            try:
                doc = json.loads(line)
                if doc.get("index") != checked - 1:
                    raise ValueError(f"index {doc.get('index')!r} out of order")
                result = doc.get("result")
                if result == "REFUSED":
                    continue
                if not isinstance(doc.get("receipt"), dict):
                    raise ValueError(f"result {result!r} without a receipt")
                claims = verify_receipt(SignedReceipt.from_json(doc["receipt"]), keys)
                if claims.get("outcome") != result:
                    raise ValueError(f"the receipt says {claims.get('outcome')}, the line {result}")
            except (ReceiptInvalid, KeyError, ValueError, AttributeError) as e:
                failures.append({"line": number, "message": str(e)})
    return checked, failures


def is_jsonl(path: Path) -> bool:
    """A `verify batch` output (JSON lines) rather than one receipt file (which is
    one JSON document, and small)."""
    if path.stat().st_size > 1 << 20:
        return True
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return True
    return False


def verify_file(args: argparse.Namespace, h: CliHelpers) -> int:
    """`receipt verify` of a JSONL file: every line, exit 1 if any fails."""
    try:
        keys = load_public_keys(args.key_file)
    except (ReceiptInvalid, KeyError, ValueError) as e:
        return h.fail(args, {"reason": "KEYS_INVALID", "message": str(e)}, f"keys INVALID: {e}")
    with Progress("receipt verify", unit="lines", quiet=bool(args.json)) as progress:
        checked, failures = verify_lines(args.receipt_file, keys, progress)
    doc = {"valid": not failures, "lines": checked, "failures": failures}
    if failures:
        shown = "\n".join(f"  line {f['line']}: {f['message']}" for f in failures[:20])
        more = f"\n  and {len(failures) - 20} more" if len(failures) > 20 else ""
        return h.fail(
            args,
            {"reason": "RECEIPT_INVALID", **doc},
            f"{len(failures)} of {checked} lines INVALID\n{shown}{more}",
        )
    h.emit(args, doc, lambda: f"all {checked:,} lines VALID")
    return 0


def register(verify: Any, h: CliHelpers) -> None:
    sp = h.cmd(
        verify,
        "batch",
        lambda a: run_batch(a, h),
        "verify many persons (VerifyIdentityBatch): JSONL or CSV in, JSONL out",
    )
    sp.add_argument("--input", type=Path, required=True, help="JSONL or CSV (name,id_number)")
    sp.add_argument("--purpose", required=True)
    sp.add_argument("--out", type=Path, required=True, help="results and receipts, JSONL")
    sp.add_argument(
        "--batch-size",
        type=int,
        default=CALL_ITEMS,
        metavar="N",
        help=f"items per call (1-{MAX_BATCH}; default {CALL_ITEMS:,})",
    )
    sp.add_argument(
        "--in-flight",
        type=int,
        default=IN_FLIGHT,
        metavar="K",
        help=f"calls at once (default {IN_FLIGHT}); the input is read at most K calls ahead",
    )
