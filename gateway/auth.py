"""Authentication: who is calling.

Two ways in: an API key as a bearer token in the `authorization` metadata,
or a client certificate (mTLS) whose common name is the caller id. When both
are presented they must name the same caller.

A credential is taken only when it is unambiguous: two `authorization` headers
(or a certificate with two common names) are refused, not resolved by taking
the first, since a proxy or client library in between may see the other one.
"""

from __future__ import annotations

import grpc

from gateway.callers import Caller, CallerRegistry
from gateway.errors import caller_suspended, unauthenticated

BEARER = "bearer "


class Authenticator:
    def __init__(self, registry: CallerRegistry) -> None:
        self.registry = registry

    def authenticate(self, context: grpc.ServicerContext) -> Caller:
        by_key = self._from_api_key(context)
        by_cert = self._from_certificate(context)
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
        if caller.status != "active":
            raise caller_suspended(caller.id)
        return caller

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
