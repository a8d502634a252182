"""ReceiptService: the public keys that verify receipts offline."""

from __future__ import annotations

from govgw.v1 import receipt_pb2, receipt_pb2_grpc

from gateway import validation
from gateway.pipeline import Exec, Outcome, Pipeline, Request
from gateway.plan import KEYS_READ
from gateway.services.common import timestamp

DEFAULT_PURPOSE = "回执验证"


class ReceiptService(receipt_pb2_grpc.ReceiptServiceServicer):
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.parts = pipeline.parts

    async def ListReceiptKeys(self, request: receipt_pb2.ListReceiptKeysRequest, context):
        def parse() -> Request:
            return Request(validation.purpose(request.purpose or DEFAULT_PURPOSE), ("",))

        def execute(ex: Exec) -> Outcome[receipt_pb2.ListReceiptKeysResponse]:
            key = self.parts.keyring.receipt_key
            created = timestamp(key.created_at)
            return Outcome(
                receipt_pb2.ListReceiptKeysResponse(
                    keys=[
                        receipt_pb2.ReceiptKey(
                            key_id=key_id, algorithm=alg, public_key_pem=pem, created_at=created
                        )
                        for key_id, alg, pem in self.parts.signer.public_keys()
                    ]
                )
            )

        return await self.pipeline.run(context, KEYS_READ, parse, execute)
