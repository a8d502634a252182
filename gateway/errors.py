"""The gateway's error vocabulary, mapped onto gRPC's rich error model.

Every failure a caller can cause is a `GovgwError` with a precise status
code, an UPPER_SNAKE reason in domain "govgw" (google.rpc.ErrorInfo) and,
for bad input, field violations (google.rpc.BadRequest). Messages never
carry a raw subject key, name or phone: they name the field, not its value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

DOMAIN = "govgw"


@dataclass
class FieldViolation:
    field: str
    description: str
    reason: str = ""


@dataclass
class GovgwError(Exception):
    code: grpc.StatusCode
    reason: str
    message: str
    violations: Sequence[FieldViolation] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"

    def to_status(self) -> status_pb2.Status:
        details = []
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata=dict(self.metadata)
        )
        details.append(info)
        if self.violations:
            br = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description, reason=v.reason
                    )
                    for v in self.violations
                ]
            )
            details.append(br)
        if self.retry_after_s is not None:
            secs = int(self.retry_after_s)
            nanos = int((self.retry_after_s - secs) * 1e9)
            details.append(
                error_details_pb2.RetryInfo(
                    retry_delay=duration_pb2.Duration(seconds=secs, nanos=nanos)
                )
            )
        packed = []
        for d in details:
            a = any_pb2.Any()
            a.Pack(d)
            packed.append(a)
        return status_pb2.Status(
            code=getattr(code_pb2, self.code.name), message=self.message, details=packed
        )


def invalid(field_name: str, description: str, reason: str = "INVALID_ARGUMENT") -> GovgwError:
    """A single bad input field."""
    return GovgwError(
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        f"{field_name}: {description}",
        violations=[FieldViolation(field_name, description, reason)],
    )


# A reply names at most this many bad fields: a request with 100,000 bad items
# must not get a reply too large for gRPC's trailers (the caller fixes the first
# ones and tries again; ErrorInfo's `violations` says how many there were).
MAX_VIOLATIONS = 20


def invalid_many(violations: Sequence[FieldViolation]) -> GovgwError:
    first = violations[0]
    shown = list(violations[:MAX_VIOLATIONS])
    more = len(violations) - len(shown)
    message = "; ".join(f"{v.field}: {v.description}" for v in shown)
    return GovgwError(
        grpc.StatusCode.INVALID_ARGUMENT,
        first.reason or "INVALID_ARGUMENT",
        f"{message}; and {more} more" if more else message,
        violations=shown,
        metadata={"violations": str(len(violations))} if more else {},
    )


def denied(reason: str, message: str, **metadata: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.PERMISSION_DENIED, reason, message, metadata=metadata)


def caller_suspended(caller_id: str) -> GovgwError:
    """The refusal of a caller whose access is suspended (R10), wherever it is found."""
    return GovgwError(
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_SUSPENDED",
        "this caller's access is suspended; an administrator must reinstate it",
        metadata={"caller": caller_id},
    )


def operator_suspended(caller_id: str, operator: str, department: str) -> GovgwError:
    """One clerk of a hall suspended by the enumeration monitor (R10); the hall works on."""
    return GovgwError(
        grpc.StatusCode.PERMISSION_DENIED,
        "OPERATOR_SUSPENDED",
        f"operator {operator} is suspended; ask the administrator of {department}"
        " to have it reinstated (govgw callers reinstate --operator)",
        metadata={"caller": caller_id, "operator": operator, "contact": department},
    )


def unauthenticated(reason: str, message: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.UNAUTHENTICATED, reason, message)


def not_found(reason: str, message: str, **metadata: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.NOT_FOUND, reason, message, metadata=metadata)


def unavailable(reason: str, message: str) -> GovgwError:
    return GovgwError(grpc.StatusCode.UNAVAILABLE, reason, message)


def database_unavailable() -> GovgwError:
    """A call that needs the shared database while it is unreachable (fail closed).
    The message names no URL, host or password: the operator finds them in the log."""
    return GovgwError(
        grpc.StatusCode.UNAVAILABLE,
        "DATABASE_UNAVAILABLE",
        "the gateway's database is unavailable; nothing was changed, retry shortly",
        retry_after_s=1.0,
    )


def exhausted(reason: str, message: str, retry_after_s: float) -> GovgwError:
    return GovgwError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, reason, message, retry_after_s=retry_after_s
    )
