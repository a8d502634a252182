"""A refused call as the SDK raises it: `GovgwClientError`, one type for sync and asyncio."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

REQUEST_ID_TRAILER = "x-request-id"
_DETAILS_TRAILER = "grpc-status-details-bin"


@dataclass(frozen=True)
class Violation:
    """One field at fault (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str
    reason: str


@dataclass
class GovgwClientError(Exception):
    """A call failed: gRPC code, the gateway's reason, the fields at fault, the request id."""

    code: grpc.StatusCode
    reason: str
    message: str
    violations: list[Violation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None
    request_id: str = ""

    def __str__(self) -> str:
        text = f"{self.code.name} {self.reason}".rstrip()
        details = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        if details:
            text += f" {details}"
        if self.message and self.message not in details:
            text += f" — {self.message}" if details else f": {self.message}"
        return text + (f" (request {self.request_id})" if self.request_id else "")

    @property
    def code_name(self) -> str:
        return self.code.name

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.name,
            "reason": self.reason,
            "message": self.message,
            "violations": [v.__dict__ for v in self.violations],
            "metadata": self.metadata,
            "retry_after_s": self.retry_after_s,
            "request_id": self.request_id,
        }

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> GovgwClientError:
        """From a sync or grpc.aio error: the details ride in the trailers either way."""
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        message = err.details() if hasattr(err, "details") else str(err)
        out = cls(code=code, reason="", message=message or "")
        trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
        for key, value in trailers or ():
            if key == REQUEST_ID_TRAILER:
                out.request_id = str(value)
            elif key == _DETAILS_TRAILER:
                out._read_details(status_pb2.Status.FromString(value))
        out.request_id = out.metadata.get("request_id", "") or out.request_id
        return out

    def _read_details(self, status: status_pb2.Status) -> None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                self.reason, self.metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                detail.Unpack(br)
                self.violations = [
                    Violation(v.field, v.description, v.reason) for v in br.field_violations
                ]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                ri = error_details_pb2.RetryInfo()
                detail.Unpack(ri)
                self.retry_after_s = ri.retry_delay.seconds + ri.retry_delay.nanos / 1e9
