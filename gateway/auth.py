"""Authentication: who is calling.

Two ways in: an API key as a bearer token in the `authorization` metadata,
or a client certificate (mTLS) whose common name is the caller id. When both
are presented they must name the same caller.
"""

from __future__ import annotations

import grpc

from gateway.callers import Caller, CallerRegistry
from gateway.errors import GovgwError, unauthenticated

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
            raise GovgwError(
                grpc.StatusCode.PERMISSION_DENIED,
                "CALLER_SUSPENDED",
                "this caller's access is suspended; an administrator must reinstate it",
                metadata={"caller": caller.id},
            )
        return caller

    def _from_api_key(self, context: grpc.ServicerContext) -> Caller | None:
        header = next((v for k, v in context.invocation_metadata() if k == "authorization"), None)
        if header is None:
            return None
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
        caller_id = names[0].decode() if isinstance(names[0], bytes) else str(names[0])
        caller = self.registry.get(caller_id)
        if caller is None:
            raise unauthenticated(
                "CERTIFICATE_UNKNOWN_CALLER", "the client certificate names no registered caller"
            )
        return caller
