"""The audit trail (操作留痕): durable, hash-chained records of every call."""

from gateway.audit.log import (
    AuditEventRejected,
    AuditLog,
    AuditRecordRef,
    AuditStats,
    AuditUnavailable,
    read_records,
)
from gateway.audit.verify import ChainReport, verify_chain

__all__ = [
    "AuditEventRejected",
    "AuditLog",
    "AuditRecordRef",
    "AuditStats",
    "AuditUnavailable",
    "ChainReport",
    "read_records",
    "verify_chain",
]
