"""Authentication: who is calling.

Two ways in: an API key as a bearer token in the `authorization` metadata,
or a client certificate (mTLS) whose common name is the caller id. When both
are presented they must name the same caller.

A credential is taken only when it is unambiguous: two `authorization` headers
(or a certificate with two common names) are refused, not resolved by taking
the first, since a proxy or client library in between may see the other one.
"""

from __future__ import annotations

import dataclasses

import grpc

from contract.metadata import OPERATOR_HEADER, OPERATOR_KINDS, OPERATOR_PATTERN
from gateway.callers import Caller, CallerRegistry
from gateway.errors import caller_suspended, invalid, operator_suspended, unauthenticated

BEARER = "bearer "


class Authenticator:
    def __init__(self, registry: CallerRegistry, certificates: bool = True) -> None:
        self.registry = registry
        # Without TLS no call carries a certificate: its look-up is skipped.
        self.certificates = certificates

    def authenticate(self, context: grpc.ServicerContext) -> Caller:
        """Who is calling, refused if suspended: `identify`, then `check_active`."""
        caller = self.identify(context)
        self.check_active(caller)
        return caller

    def identify(self, context: grpc.ServicerContext) -> Caller:
        """The caller the credentials name, with the operator the call names (if any)."""
        by_key = self._from_api_key(context)
        by_cert = self._from_certificate(context) if self.certificates else None
        if by_key is None and by_cert is None:
            raise unauthenticated(
                "CREDENTIALS_MISSING",
                "send `authorization: Bearer <api key>` metadata or a client certificate",
            )
        if by_key is not None and by_cert is not None and by_key.id != by_cert.id:
            raise unauthenticated(
                "CREDENTIALS_CONFLICT",
                "the API key and the client certificate name different callers",
            )
        caller = by_key or by_cert
        assert caller is not None
        operator = _operator(context)
        if not operator:
            return caller
        if caller.kind not in OPERATOR_KINDS:
            raise invalid(
                f"metadata.{OPERATOR_HEADER}",
                f"only {' and '.join(OPERATOR_KINDS)} callers name an operator",
                "OPERATOR_NOT_ALLOWED",
            )
        held = self.registry.operator(caller.id, operator)
        since = held.since if held is not None else 0.0
        return dataclasses.replace(caller, operator=operator, operator_since=since)

    def check_active(self, caller: Caller) -> None:
        """Refuse a suspended caller, or a suspended operator of an active one."""
        if caller.status != "active":
            raise caller_suspended(caller.id)
        if caller.operator:
            held = self.registry.operator(caller.id, caller.operator)
            if held is not None and held.status != "active":
                raise operator_suspended(caller.id, caller.operator, caller.department)

    def recheck(self, caller: Caller) -> None:
        """`check_active` on the registry as it is now, not as the call found it: a
        long call (a batch) stops when its caller or operator is suspended while it
        runs -- by an administrator, or by another call's enumeration monitor."""
        current = self.registry.get(caller.id)
        if current is None or current.status != "active":
            raise caller_suspended(caller.id)
        self.check_active(caller)

    def _from_api_key(self, context: grpc.ServicerContext) -> Caller | None:
        headers = [v for k, v in context.invocation_metadata() if k.lower() == "authorization"]
        if not headers:
            return None
        if len(headers) > 1:
            raise unauthenticated(
                "AUTHORIZATION_AMBIGUOUS", "send exactly one `authorization` header"
            )
        header = headers[0]
        if not isinstance(header, str) or not header.lower().startswith(BEARER):
            raise unauthenticated(
                "AUTHORIZATION_MALFORMED", "authorization must be `Bearer <api key>`"
            )
        caller = self.registry.by_api_key(header[len(BEARER) :].strip())
        if caller is None:
            raise unauthenticated("API_KEY_INVALID", "the API key is not valid")
        return caller

    def _from_certificate(self, context: grpc.ServicerContext) -> Caller | None:
        names = context.auth_context().get("x509_common_name") or []
        if not names:
            return None
        ids = {n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names}
        if len(ids) > 1:
            raise unauthenticated(
                "CERTIFICATE_AMBIGUOUS", "the client certificate names more than one caller"
            )
        (caller_id,) = ids
        caller = self.registry.get(caller_id)
        if caller is None:
            raise unauthenticated(
                "CERTIFICATE_UNKNOWN_CALLER", "the client certificate names no registered caller"
            )
        return caller


def _operator(context: grpc.ServicerContext) -> str:
    """The operator the call names (contract.metadata), checked; "" when none."""
    values = [v for k, v in context.invocation_metadata() or () if k == OPERATOR_HEADER]
    if not values:
        return ""
    field = f"metadata.{OPERATOR_HEADER}"
    if len(values) > 1:
        raise invalid(field, "send at most one operator", "OPERATOR_AMBIGUOUS")
    value = values[0]
    if not isinstance(value, str) or not OPERATOR_PATTERN.fullmatch(value):
        raise invalid(field, "1-64 characters of letters, digits and . _ @ -", "OPERATOR_MALFORMED")
    return value
