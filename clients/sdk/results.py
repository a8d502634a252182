"""Results the SDK shapes by hand: verifications with their verified receipt, lookups,
listings. Every other answer is a generated dataclass of clients.sdk.types."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

from clients.receipts import CLAIM_FIELDS, SignedReceipt, keyset_document, open_commitment
from clients.sdk.types import Dataset, ReceiptKey, VerificationResult

T = TypeVar("T")


@dataclass(frozen=True)
class Provenance:
    source_department: str
    dataset: str
    dataset_version: str
    retrieved_at: datetime

    def to_json(self) -> dict[str, str]:
        return {
            "source_department": self.source_department,
            "dataset": self.dataset,
            "dataset_version": self.dataset_version,
            "retrieved_at": self.retrieved_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }


@dataclass(frozen=True)
class FieldValue:
    value: str
    treatment: str  # the masking operator applied; "keep" means raw


@dataclass(frozen=True)
class Disputed:
    """A field the answer used that is under correction (校核 pending, R8): accept the
    citizen's valid document for it rather than refusing service."""

    dataset: str
    field: str
    filed_on: str  # YYYY-MM-DD, China time

    def to_json(self) -> dict[str, str]:
        return {"dataset": self.dataset, "field": self.field, "filed_on": self.filed_on}

    def __str__(self) -> str:
        return f"{self.dataset}.{self.field} (correction filed {self.filed_on})"


def disputed_notice(items: Sequence[Disputed]) -> str:
    """The human line for a counter clerk ('' when nothing is disputed)."""
    if not items:
        return ""
    return (
        "under correction (校核), accept the citizen's valid document: "
        + "; ".join(str(d) for d in items)
        + "\n"
    )


_OPTIONAL = ("disputed_fields", "alg")
_KNOWN = frozenset((*CLAIM_FIELDS, *_OPTIONAL))


@dataclass(frozen=True)
class ReceiptClaims:
    """What a receipt attests (its signed payload), typed."""

    action: str
    caller: str
    dataset: str
    issued_at: str
    outcome: str
    policy_version: str
    receipt_id: str
    subject_commitment: str
    # Present when the answer used fields under correction (R8): dataset:field:filed_on;...
    disputed_fields: str = ""
    # The signature algorithm (ed25519 or sm2); absent from receipts issued before it was.
    alg: str = ""
    # Claims this SDK does not know yet (a newer gateway's), kept rather than dropped.
    other: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: dict[str, str]) -> ReceiptClaims:
        return cls(
            **{k: doc[k] for k in CLAIM_FIELDS},
            **{k: doc[k] for k in _OPTIONAL if k in doc},
            other={k: v for k, v in doc.items() if k not in _KNOWN},
        )

    def as_dict(self) -> dict[str, str]:
        """The claims as signed (the payload's JSON object)."""
        doc = {k: getattr(self, k) for k in CLAIM_FIELDS}
        doc.update({k: getattr(self, k) for k in ("disputed_fields", "alg") if getattr(self, k)})
        return {**doc, **self.other}


@dataclass(frozen=True)
class VerifiedReceipt:
    """A signed receipt and its claims; `verified` says its signature was checked on
    arrival against the gateway's published keys (always, unless verify_receipts=False)."""

    signed: SignedReceipt
    claims: ReceiptClaims
    verified: bool

    @property
    def receipt_id(self) -> str:
        return self.signed.receipt_id

    @property
    def key_id(self) -> str:
        return self.signed.key_id

    @property
    def salt(self) -> bytes:
        """The commitment salt the gateway gave this caller only (and keeps nowhere):
        with the ID number it opens the receipt's subject commitment to an inspector."""
        return self.signed.salt

    def opens(self, id_number: str, salt: bytes | str | None = None) -> bool:
        """Does this ID number (with this salt, by default the receipt's) open the
        subject commitment?"""
        return open_commitment(self.signed, id_number, self.salt if salt is None else salt)

    def to_json(self) -> dict[str, str]:
        """The receipt file `govgw receipt verify` reads."""
        return self.signed.to_json()


class _Disputes:
    disputed_fields: tuple[Disputed, ...]

    @property
    def disputed(self) -> tuple[Disputed, ...]:  # the name before typed results
        return self.disputed_fields


def _receipt_json(r: VerifiedReceipt | None) -> dict[str, Any]:
    return {
        "receipt": r.to_json() if r else None,
        "receipt_claims": r.claims.as_dict() if r else None,
    }


@dataclass(frozen=True)
class IdentityResult(_Disputes):
    result: VerificationResult
    receipt: VerifiedReceipt | None
    request_id: str
    policy_version: str
    disputed_fields: tuple[Disputed, ...] = ()

    @property
    def matched(self) -> bool:
        return self.result is VerificationResult.MATCH

    def to_json(self) -> dict[str, Any]:
        return {
            "disputed_fields": [d.to_json() for d in self.disputed_fields],
            "result": self.result.name,
            **_receipt_json(self.receipt),
            "request_id": self.request_id,
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class AttributesResult(_Disputes):
    results: dict[str, bool]  # "age_at_least(18)" -> True
    receipt: VerifiedReceipt | None
    request_id: str
    policy_version: str
    disputed_fields: tuple[Disputed, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "disputed_fields": [d.to_json() for d in self.disputed_fields],
            "results": self.results,
            **_receipt_json(self.receipt),
            "request_id": self.request_id,
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class LookupResult(_Disputes):
    records: list[dict[str, FieldValue]]
    provenance: Provenance
    request_id: str
    policy_version: str = ""
    index: int = 0
    found: bool = True
    # Released fields under correction (the same for every record of the subject).
    disputed_fields: tuple[Disputed, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "disputed_fields": [d.to_json() for d in self.disputed_fields],
            "records": [
                {k: {"value": v.value, "treatment": v.treatment} for k, v in r.items()}
                for r in self.records
            ],
            "provenance": self.provenance.to_json(),
            "request_id": self.request_id,
            "policy_version": self.policy_version,
            "found": self.found,
            "index": self.index,
        }


@dataclass(frozen=True)
class Listing(Generic[T]):
    """A list answer: iterate, index and len() it like a tuple; `request_id` is the call's
    (the last page's, for answers gathered page by page)."""

    items: tuple[T, ...] = ()
    request_id: str = ""

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[T, ...]: ...
    def __getitem__(self, i: int | slice) -> T | tuple[T, ...]:
        return self.items[i]


@dataclass(frozen=True)
class DatasetList(Listing[Dataset]):
    """Every dataset, all from the catalog of one policy version."""

    policy_version: str = ""


@dataclass(frozen=True)
class Keyset(Listing[ReceiptKey]):
    """The gateway's receipt keys; `document()` is the keyset file `receipt verify` reads."""

    def document(self) -> dict[str, Any]:
        return keyset_document((k.key_id, k.algorithm, k.public_key_pem) for k in self.items)
