"""ReceiptService: the public keys that verify receipts offline."""

from __future__ import annotations

from typing import Any

from govgw.v1 import receipt_pb2

from gateway import validation
from gateway.call import Exec, Outcome, Request
from gateway.pipeline import Parts
from gateway.plan import KEYS_READ
from gateway.routes import Incoming, Route, rows_of
from gateway.services.common import timestamp

DEFAULT_PURPOSE = "回执验证"


class ReceiptService:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(receipt_pb2.DESCRIPTOR, "ReceiptService")
        return [row("ListReceiptKeys", KEYS_READ, self.parse_list_keys, self.list_keys)]

    def parse_list_keys(
        self, request: receipt_pb2.ListReceiptKeysRequest, _in: Incoming
    ) -> Request[None]:
        return Request(validation.purpose(request.purpose or DEFAULT_PURPOSE), ("",))

    def list_keys(self, ex: Exec[None]) -> Outcome[receipt_pb2.ListReceiptKeysResponse]:
        return Outcome(
            receipt_pb2.ListReceiptKeysResponse(
                keys=[
                    receipt_pb2.ReceiptKey(
                        key_id=k.key_id,
                        algorithm=k.algorithm,
                        public_key_pem=k.public_pem,
                        created_at=timestamp(k.created_at),
                    )
                    for k in self.parts.signer.published()
                ]
            )
        )
