"""Pages of the conflicts report: the walk's order, its cursor and the page token that carries it.

Blind indexes are keyed *per dataset*, so two datasets cannot be joined on
them. For each subject kind the datasets holding an attribute are ordered
smallest first; every dataset but the largest is walked subject by subject in
blind-index order, and the others are probed through their own blind index of
the same key (report.py). A page resumes the walk: its token holds the
dataset order it was started with and the blind index reached (keyed hashes,
no personal data), and the active pool key version, since blind indexes
change when the keys rotate: a token from before a rotation is refused
rather than resumed at a wrong place.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.catalog import SUBJECT_KINDS, Catalog, Dataset
from gateway.errors import GovgwError, invalid
from gateway.pool.store import Pool

TOKEN_VERSION = 1

Step = tuple[str, tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Cursor:
    orders: tuple[tuple[str, ...], ...]  # per subject kind, datasets smallest first
    step: int  # index into the walk (see walk_steps)
    after: bytes  # last blind index reached in that step's dataset
    skip: int  # entries of the subject at `after` already returned (0: subject done)
    key_version: int  # the active pool key version the blind indexes are under


def walk_steps(orders: Sequence[Sequence[str]]) -> list[Step]:
    """(dataset walked, datasets walked before it, datasets after it) for each step."""
    out = []
    for order in orders:
        for i, name in enumerate(order[:-1]):
            out.append((name, tuple(order[:i]), tuple(order[i + 1 :])))
    return out


def bad_token(description: str) -> GovgwError:
    return invalid("page_token", description, "PAGE_TOKEN_INVALID")


def encode_token(c: Cursor, attribute: str) -> str:
    doc = {
        "v": TOKEN_VERSION,
        "a": attribute,
        "o": [list(o) for o in c.orders],
        "s": c.step,
        "b": c.after.hex(),
        "k": c.skip,
        "kv": c.key_version,
    }
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, attribute: str, catalog: Catalog) -> Cursor:
    """The cursor a page token holds; INVALID_ARGUMENT naming page_token if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("v") != TOKEN_VERSION:
            raise ValueError
        orders = tuple(tuple(str(n) for n in o) for o in doc["o"])
        step, skip, key_version = int(doc["s"]), int(doc["k"]), int(doc["kv"])
        after = bytes.fromhex(str(doc["b"]))
        token_attribute = str(doc["a"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise bad_token("is not a page token this report issued") from None
    if token_attribute != attribute:
        raise bad_token("was issued for another attribute filter; start again without it")
    if any(n not in catalog.datasets for o in orders for n in o):
        raise bad_token("names a dataset the catalog no longer has; start again without it")
    if not 0 <= step <= len(walk_steps(orders)) or skip < 0:
        raise bad_token("is not a page token this report issued")
    return Cursor(orders, step, after, skip, key_version)


def _holds(ds: Dataset, attribute: str) -> bool:
    return any(f.attribute and (not attribute or f.attribute == attribute) for f in ds.fields)


def dataset_orders(pool: Pool, catalog: Catalog, attribute: str) -> tuple[tuple[str, ...], ...]:
    """Per subject kind with two or more datasets holding the attribute(s): smallest first."""
    orders = []
    for kind in SUBJECT_KINDS:
        names = [
            d.name
            for d in catalog.datasets.values()
            if d.subject_kind == kind and _holds(d, attribute)
        ]
        if len(names) >= 2:
            orders.append(tuple(sorted(names, key=lambda n: (pool.count(n), n))))
    return tuple(orders)


def nothing_after(
    pool: Pool,
    steps: Sequence[Step],
    step: int,
    after: bytes,
    skip: int,
) -> bool:
    """True when nothing is left to walk past the cursor (so no empty last page is offered)."""
    if skip > 0:
        return False
    for name, _, _ in steps[step:]:
        for _ in pool.scan_subjects(name, after):
            return False
        after = b""
    return True
