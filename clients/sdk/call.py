"""The table row of one SDK method, shared by the sync and the asyncio client.

A `Call` says which RPC, how the method's arguments become the request
(`build`, whose signature is the method's), and how the answer becomes the
typed result (`convert`). The clients only move bytes: `GovgwClient` with a
blocking channel, `AsyncGovgwClient` with grpc.aio; neither has per-method code.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, ParamSpec, TypeVar

from google.protobuf.message import Message

from clients.receipts import SignedReceipt, verify_receipt
from clients.sdk.results import ReceiptClaims, VerifiedReceipt

P = ParamSpec("P")
R = TypeVar("R")
Metadata = tuple[tuple[str, str], ...]


class Prepared(NamedTuple):
    """A request and the metadata it needs beyond the caller's credentials."""

    request: Message
    metadata: Metadata = ()


@dataclass(frozen=True)
class Ctx:
    """What a conversion may use besides the answer."""

    request_id: str
    keys: dict[str, Any] | None  # receipt keys by key id; None: receipts not checked

    def receipt(self, answer: Message) -> VerifiedReceipt | None:
        """The answer's receipt, its signature verified (raises ReceiptInvalid if not)."""
        if not answer.HasField("receipt"):
            return None
        signed = SignedReceipt.from_proto(answer.receipt)  # type: ignore[attr-defined]
        if self.keys is None:
            return VerifiedReceipt(signed, ReceiptClaims.from_dict(signed.claims()), False)
        claims = verify_receipt(signed, self.keys)
        return VerifiedReceipt(signed, ReceiptClaims.from_dict(claims), True)


@dataclass(frozen=True)
class Call(Generic[P, R]):
    service: str  # a key of clients.sdk.client.STUBS
    rpc: str
    build: Callable[P, Prepared]
    # One answer (or, with `paged`, every page's answers in order) -> the result.
    convert: Callable[[Any, Ctx], R]
    stream: bool = False  # server streaming: `convert` turns each item
    paged: bool = False  # follow next_page_token; `convert` gets the list of pages
    # Paged: start over when a page disagrees with the first (e.g. the catalog of
    # another policy version, activated between two pages); at most 3 tries.
    restart: Callable[[Any, Any], bool] | None = None


def receipt_key_id(answer: Message) -> str | None:
    """The key id of the answer's receipt, if it has one (the client fetches the
    gateway's keyset when it does not know that key yet)."""
    fields = answer.DESCRIPTOR.fields_by_name
    if "receipt" in fields and answer.HasField("receipt"):
        return str(answer.receipt.key_id)  # type: ignore[attr-defined]
    return None


def next_page(prepared: Prepared, answer: Message) -> Prepared | None:
    token = getattr(answer, "next_page_token", "")
    if not token:
        return None
    request = type(prepared.request)()
    request.CopyFrom(prepared.request)
    request.page_token = token  # type: ignore[attr-defined]
    return Prepared(request, prepared.metadata)


Exchange = Generator[Prepared, tuple[Any, str], Any]


def exchange(call: Call[Any, Any], prepared: Prepared, ctx: Callable[[str], Ctx]) -> Exchange:
    """The call as a conversation, free of I/O: yields each request to send, is sent
    back (answer, request id), returns the result. The sync client drives it with a
    blocking channel, the asyncio one with grpc.aio: paging is written once."""
    if not call.paged:
        answer, request_id = yield prepared
        return call.convert(answer, ctx(request_id))
    pages: list[Any] = []
    request_id = ""
    for _ in range(3):
        pages, page = [], prepared
        while page is not None:
            answer, request_id = yield page
            if pages and call.restart is not None and call.restart(pages[0], answer):
                break
            pages.append(answer)
            page = next_page(page, answer)
        if page is None:
            break
    return call.convert(pages, ctx(request_id))
