"""ReceiptService: the public keys that verify receipts offline."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2
from govgw.v1 import receipt_pb2, receipt_pb2_grpc

from gateway import validation
from gateway.pipeline import Exec, Outcome, Pipeline, Request
from gateway.plan import KEYS_READ

DEFAULT_PURPOSE = "回执验证"


class ReceiptService(receipt_pb2_grpc.ReceiptServiceServicer):
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.parts = pipeline.parts

    async def ListReceiptKeys(self, request: receipt_pb2.ListReceiptKeysRequest, context):
        def parse() -> Request:
            return Request(validation.purpose(request.purpose or DEFAULT_PURPOSE), ("",))

        def execute(ex: Exec) -> Outcome[receipt_pb2.ListReceiptKeysResponse]:
            created = timestamp_pb2.Timestamp()
            key = self.parts.keyring.receipt_key
            if key.created_at:
                created.FromDatetime(datetime.fromisoformat(key.created_at.replace("Z", "+00:00")))
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
