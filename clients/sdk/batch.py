"""`verify_identity_batch`: VerifyIdentityBatch for inputs of any length, streamed.

The input (an iterable of (name, id_number) pairs or {"name", "id_number"}
mappings; the asyncio client also takes an async iterable) is cut into calls
of at most `batch_size` items (the gateway takes 10,000 per call; the clients
send CALL_ITEMS), up to `in_flight` calls at once, each call's items taken
from the input when it is sent, in messages of `MESSAGE_ITEMS`: the clients
read at most `in_flight` calls ahead of the results, so a million-line file
is never held whole, here or on the server. Results come back in input
order, their `index` counted over the whole input; a call's receipts are
verified together against the gateway's published keys (unless
verify_receipts=False) once the call has answered (`convert_call`).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from govgw.v1 import verification_pb2

from clients.sdk import types as t
from clients.sdk.call import Ctx
from clients.sdk.results import Disputed, ReceiptClaims, VerifiedReceipt, _receipt_json
from contract.batch_receipts import verify_receipts
from contract.receipts import SignedReceipt

MAX_BATCH = 10_000  # the gateway's cap per call
# The blocking client's calls: of this many items, so many at once. Smaller calls in
# flight together keep both sides busy (the gateway answers one while the client
# checks another's receipts); measured in bench.batch (README, Performance).
CALL_ITEMS = 2_000
IN_FLIGHT = 3
MESSAGE_ITEMS = 500  # items per request message: fewer, larger messages cost less
# A call's deadline: the client's timeout plus this per item (a 10,000-item call
# is audited and signed whole before its first result leaves).
SECONDS_PER_ITEM = 0.005

Item = tuple[str, str] | Mapping[str, str]
_RESULTS = {1: t.VerificationResult(1), 2: t.VerificationResult(2)}


@dataclass(frozen=True)
class Refusal:
    """Why one item was not answered: the status and reason a VerifyIdentity call
    would have failed with, and the fields at fault for an item that does not parse."""

    code: str
    reason: str
    message: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchItemResult:
    """One item's answer: MATCH / NO_MATCH with its receipt, or a refusal."""

    index: int  # the item's position in the whole input, from 0
    result: t.VerificationResult  # UNSPECIFIED when refused
    refusal: Refusal | None
    receipt: VerifiedReceipt | None
    request_id: str  # the call (of up to batch_size items) that answered it
    policy_version: str
    disputed_fields: tuple[Disputed, ...] = ()

    @property
    def matched(self) -> bool:
        return self.result is t.VerificationResult.MATCH

    def to_json(self) -> dict[str, Any]:
        """One line of `govgw verify batch --out`: the receipt in the file format
        `govgw receipt verify` reads."""
        return {
            "index": self.index,
            "result": self.result.name if self.refusal is None else "REFUSED",
            "refusal": (
                {
                    "code": self.refusal.code,
                    "reason": self.refusal.reason,
                    "message": self.refusal.message,
                    "fields": list(self.refusal.fields),
                }
                if self.refusal
                else None
            ),
            "disputed_fields": [d.to_json() for d in self.disputed_fields],
            **_receipt_json(self.receipt),
            "request_id": self.request_id,
            "policy_version": self.policy_version,
        }


def check_size(batch_size: int) -> None:
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size: 1 to {MAX_BATCH}")


def timeout_for(client_timeout_s: float, batch_size: int) -> float:
    return client_timeout_s + SECONDS_PER_ITEM * batch_size


def _item(item: Item) -> verification_pb2.IdentityItem:
    if isinstance(item, Mapping):
        return verification_pb2.IdentityItem(
            name=str(item.get("name", "")), id_number=str(item.get("id_number", ""))
        )
    name, id_number = item
    return verification_pb2.IdentityItem(name=name, id_number=id_number)


def messages(
    taken: Sequence[Item], purpose: str
) -> Iterator[verification_pb2.VerifyIdentityBatchRequest]:
    """One call's request messages: its items, MESSAGE_ITEMS a message, made as gRPC
    asks for them; the purpose rides on the first one only."""
    for at in range(0, len(taken), MESSAGE_ITEMS):
        yield verification_pb2.VerifyIdentityBatchRequest(
            purpose=purpose if at == 0 else "",
            items=[_item(i) for i in taken[at : at + MESSAGE_ITEMS]],
        )


async def aiter_of(items: Iterable[Item] | AsyncIterable[Item]) -> AsyncIterator[Item]:
    if isinstance(items, AsyncIterable):
        async for i in items:
            yield i
    else:
        for i in items:
            yield i


def convert_call(
    responses: Sequence[verification_pb2.VerifyIdentityBatchResponse], base: int, ctx: Ctx
) -> Iterator[BatchItemResult]:
    """One call's results, typed, from all its response chunks; `base` is the call's
    first index in the input. The call's receipts are verified together
    (`contract.batch_receipts`: the batch's tree rebuilt once, its signature checked
    once); ReceiptInvalid if any fails."""
    results = [(response, r) for response in responses for r in response.results]
    signed = [SignedReceipt.from_proto(r.receipt) for _, r in results if r.HasField("receipt")]
    keys = ctx.keys
    claims = [s.claims() for s in signed] if keys is None else verify_receipts(signed, keys)
    receipts = iter(
        [
            VerifiedReceipt(s, ReceiptClaims.from_dict(c), ctx.keys is not None)
            for s, c in zip(signed, claims, strict=True)
        ]
    )
    for response, r in results:
        yield BatchItemResult(
            index=base + r.index,
            result=_RESULTS.get(r.result, t.VerificationResult(0)),
            refusal=(
                Refusal(
                    r.refusal.code, r.refusal.reason, r.refusal.message, tuple(r.refusal.fields)
                )
                if r.HasField("refusal")
                else None
            ),
            receipt=next(receipts) if r.HasField("receipt") else None,
            request_id=response.request_id or ctx.request_id,
            policy_version=response.policy_version,
            disputed_fields=tuple(
                dict.fromkeys(Disputed(d.dataset, d.field, d.filed_on) for d in r.disputed_fields)
            ),
        )


def unknown_key(response: verification_pb2.VerifyIdentityBatchResponse, keys: Any) -> bool:
    """Does a receipt of this chunk name a key the client has not fetched yet?"""
    return any(r.HasField("receipt") and r.receipt.key_id not in keys for r in response.results)
