"""Conflicting values (R16): two providers hold different values for one subject's attribute.

Aba 2021 art. 29 and Aba 2024 art. 26 ask that where departments' data about
the same subject disagree, the disagreement is found and reported to the
coordinating department, which has it corrected at the source. The catalog
says which field holds which attribute concept (`"attribute": "person.name"`);
this module compares those fields across datasets, subject by subject.

Values are compared after normalization, so that formatting alone is never a
conflict: NFKC (full-width digits and letters, compatibility forms), blanks,
date notations (1958年9月30日, 1958/9/30, 19580930), and for addresses the
punctuation, Chinese numerals before units (三组 = 3组), a trailing 号 and
the province and prefecture in front of a recognised county. A variant
character (瑪 for 玛) is not normalized away: it is a different entry in a
register, and exactly what the report is for.

The join. The pool finds rows by a blind index that is keyed *per dataset*,
so two datasets cannot be joined on their indexes, and decrypting every
dataset whole would hold the pool in memory. Instead, for each subject kind,
the datasets holding an attribute are ordered smallest first; every dataset
but the largest is walked subject by subject in blind-index order (one
subject's rows decrypted at a time), and for each subject the other
datasets are probed through *their* blind index of the same subject key. A
subject held by several walked datasets is compared when the first of them
is walked, and skipped in the later ones. The cost is one indexed probe per
walked row; the largest dataset (the population register) is never walked.

Pages resume the walk: the page token holds the dataset order it was started
with and the blind index reached (keyed hashes, no personal data). A page
stops after SCAN_BUDGET subjects even if it is not full, so one call never
holds the server's event loop long (a few hundred milliseconds at most);
keep paging while a next_page_token comes back. A token also records the
active pool key version: blind indexes change when the keys rotate, so a
token from before a rotation is refused rather than resumed at a wrong place.

Nothing raw leaves: each value is shown through the report treatment the
catalog names for its concept, the subject key through the one for its
subject kind, and the subject by its keyed hash (the one audit records use).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date

from gateway.catalog import SUBJECT_KINDS, Catalog, Concept, Dataset, Treatment
from gateway.errors import GovgwError, invalid
from gateway.keys import KeyRing
from gateway.pool.store import Pool
from masking import MaskingContext, apply_treatment
from masking.gazetteer import CITY, DISTRICT, PROVINCE, gazetteer

# Subjects one page walks at most: about 0.1-0.2 s of work on the server.
SCAN_BUDGET = 1000
# The offline report runs on its own, in bigger steps.
OFFLINE_SCAN_BUDGET = 20_000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
TOKEN_VERSION = 1
# How the masked subject key is shown when the catalog names no treatment.
_DEFAULT_SUBJECT_TREATMENT = Treatment("mask", {"keep_first": 6, "keep_last": 4})

# ----- normalization ---------------------------------------------------------------------------

_BLANKS = re.compile(r"\s+")
# Middle dots of transliterated names (阿卜杜·热合曼) come in many code points.
_NAME_DOTS = re.compile(r"[·•・‧∙⋅.．]")
_DATE_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_ADDRESS_PUNCT = re.compile(r"[,，、。.·\-－—–_()（）\[\]【】#＃:：;；'\"“”‘’]")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}  # fmt: skip
_CN_NUMBER_BEFORE_UNIT = re.compile(
    r"([零〇一二两三四五六七八九十百]+)(?=[组號号栋幢单元楼层室巷弄社队排])"
)


def _cn_number(text: str) -> str:
    """一 -> 1, 十二 -> 12, 三十 -> 30, 一百零五 -> 105, 一二 -> 12 (digit by digit)."""
    if "十" not in text and "百" not in text:
        return "".join(str(_CN_DIGITS[ch]) for ch in text)
    total, digit = 0, None
    for ch in text:
        if ch == "百":
            total += (digit if digit is not None else 1) * 100
            digit = None
        elif ch == "十":
            total += (digit if digit is not None else 1) * 10
            digit = None
        else:
            digit = _CN_DIGITS[ch]
    return str(total + (digit or 0))


def normalize_name(value: str) -> str:
    text = unicodedata.normalize("NFKC", value)
    return _NAME_DOTS.sub("", _BLANKS.sub("", text)).casefold()


def normalize_date(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip()
    m = _DATE_YMD.fullmatch(text) or _DATE_COMPACT.fullmatch(text)
    if m is None:
        return _BLANKS.sub("", text)
    try:
        return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        return _BLANKS.sub("", text)  # not a calendar date: compare as written


def normalize_address(value: str) -> str:
    text = _BLANKS.sub("", unicodedata.normalize("NFKC", value))
    text = _ADDRESS_PUNCT.sub("", text)
    text = _CN_NUMBER_BEFORE_UNIT.sub(lambda m: _cn_number(m[1]), text)
    text = text.replace("號", "号").removesuffix("号")
    parsed = gazetteer().parse(text)
    if parsed is not None and DISTRICT in parsed.ends:
        # From the county on: "四川省阿坝藏族羌族自治州汶川县…" and "汶川县…" are one place.
        cut = max((parsed.ends[lvl] for lvl in (PROVINCE, CITY) if lvl in parsed.ends), default=0)
        text = text[cut:]
    return text


NORMALIZERS = {"name": normalize_name, "date": normalize_date, "address": normalize_address}


def normalize(kind: str, value: str) -> str:
    """The form of a value of attribute kind `kind` that values are compared in."""
    return NORMALIZERS[kind](value)


# ----- the report ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Conflict:
    subject_hash: str
    subject_masked: str
    subject_kind: str
    attribute: str
    values: tuple[HeldValue, ...]

    def to_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc["values"] = [asdict(v) for v in self.values]
        return doc


@dataclass(frozen=True)
class Page:
    conflicts: tuple[Conflict, ...]
    next_page_token: str
    subjects_scanned: int
    datasets: tuple[str, ...]  # the datasets compared


@dataclass(frozen=True)
class _Cursor:
    orders: tuple[tuple[str, ...], ...]  # per subject kind, datasets smallest first
    step: int  # index into the walk (see _steps)
    after: bytes  # last blind index reached in that step's dataset
    skip: int  # entries of the subject at `after` already returned (0: subject done)
    key_version: int  # the active pool key version the blind indexes are under


def _steps(orders: Sequence[Sequence[str]]) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(dataset walked, datasets walked before it, datasets after it) for each step."""
    out = []
    for order in orders:
        for i, name in enumerate(order[:-1]):
            out.append((name, tuple(order[:i]), tuple(order[i + 1 :])))
    return out


def _bad_token(description: str) -> GovgwError:
    return invalid("page_token", description, "PAGE_TOKEN_INVALID")


def encode_token(c: _Cursor, attribute: str) -> str:
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


def decode_token(token: str, attribute: str, catalog: Catalog) -> _Cursor:
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
        raise _bad_token("is not a page token this report issued") from None
    if token_attribute != attribute:
        raise _bad_token("was issued for another attribute filter; start again without it")
    if any(n not in catalog.datasets for o in orders for n in o):
        raise _bad_token("names a dataset the catalog no longer has; start again without it")
    if not 0 <= step <= len(_steps(orders)) or skip < 0:
        raise _bad_token("is not a page token this report issued")
    return _Cursor(orders, step, after, skip, key_version)


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

    def check_token(self, token: str, attribute: str) -> _Cursor:
        """The token's cursor, or INVALID_ARGUMENT naming page_token."""
        cursor = decode_token(token, attribute, self.catalog)
        if cursor.key_version != self.pool.active_key_version:
            raise _bad_token("the pool keys were rotated since it was issued; start again")
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
            cursor = _Cursor(
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
        steps = _steps(cursor.orders)
        found: list[Conflict] = []
        scanned = 0
        step, after, skip = cursor.step, cursor.after, cursor.skip
        versions: dict[str, tuple[str, str]] = {}
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
        if not done and _nothing_after(self.pool, steps, step, after, skip):
            done = True
        token = (
            ""
            if done
            else encode_token(
                _Cursor(cursor.orders, step, after, skip, cursor.key_version), attribute
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
        versions: dict[str, tuple[str, str]],
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
            values = [(d, name, raw, normalize(concept.kind, raw)) for d, name, raw in raws]
            if len({v[3] for v in values}) < 2:
                continue
            groups: dict[str, str] = {}
            shown = []
            for d, field_name, raw, norm in values:
                group = groups.setdefault(norm, chr(ord("A") + len(groups)))
                version, imported = self._version(d.name, versions)
                shown.append(
                    HeldValue(
                        provider=d.provider,
                        dataset=d.name,
                        field=field_name,
                        masked_value=apply_treatment(concept.report, raw, ctx),
                        value_group=group,
                        dataset_version=version,
                        imported_at=imported,
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
                )
            )
        return out

    def _version(self, dataset: str, cache: dict[str, tuple[str, str]]) -> tuple[str, str]:
        if dataset not in cache:
            history = self.pool.versions(dataset)
            cache[dataset] = (
                (str(history[0]["version"]), str(history[0]["imported_at"]))
                if history
                else ("", "")
            )
        return cache[dataset]


def _nothing_after(
    pool: Pool,
    steps: Sequence[tuple[str, tuple[str, ...], tuple[str, ...]]],
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
