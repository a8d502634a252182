"""The Python SDK: typed calls to the gateway, rich errors, offline receipt checks.

    from clients.sdk import GovgwClient
    with GovgwClient("127.0.0.1:50051", api_key=KEY) as gw:
        r = gw.verify_identity("张三", "11010519491231002X", purpose="户籍业务办理")
        r.result, r.receipt.claims.outcome   # VerificationResult.MATCH, "MATCH"

Every method returns a frozen dataclass (clients.sdk.results for verifications,
lookups and listings; clients.sdk.types, generated from the protos, for the rest)
with enums as Python enums and the call's `request_id`; `to_json(result)` is its
JSON form. `AsyncGovgwClient` has the same methods for asyncio.
"""

from clients.receipts import load_public_keys, open_commitment, verify_receipt
from clients.sdk.batch import BatchItemResult, Refusal
from clients.sdk.calls import LEGAL_ENTITY, PERSON, guess_kind, predicate_label
from clients.sdk.calls_subjects import TOKEN_HEADER
from clients.sdk.convert import to_json
from clients.sdk.errors import GovgwClientError, Violation
from clients.sdk.methods import AsyncGovgwClient, GovgwClient, PolicyAdminClient
from clients.sdk.results import (
    AttributesResult,
    DatasetList,
    Disputed,
    FieldValue,
    IdentityResult,
    Keyset,
    Listing,
    LookupResult,
    Provenance,
    ReceiptClaims,
    VerifiedReceipt,
    disputed_notice,
)

__all__ = [
    "LEGAL_ENTITY",
    "PERSON",
    "TOKEN_HEADER",
    "AsyncGovgwClient",
    "AttributesResult",
    "BatchItemResult",
    "DatasetList",
    "Disputed",
    "FieldValue",
    "GovgwClient",
    "GovgwClientError",
    "IdentityResult",
    "Keyset",
    "Listing",
    "LookupResult",
    "PolicyAdminClient",
    "Provenance",
    "ReceiptClaims",
    "Refusal",
    "VerifiedReceipt",
    "Violation",
    "disputed_notice",
    "guess_kind",
    "load_public_keys",
    "open_commitment",
    "predicate_label",
    "to_json",
    "verify_receipt",
]
