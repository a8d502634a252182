"""Authentication: every refusal is pinned by code and ErrorInfo reason.

The real server's paths (metadata over the wire, mTLS handshakes) are in
tests/integration/test_server.py; here the Authenticator is given exactly the
metadata and certificate names a gRPC context would carry, so that each branch,
including the ones a client library makes hard to reach, is checked on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from gateway.auth import Authenticator
from gateway.callers import Caller, CallerRegistry
from gateway.errors import GovgwError

UNAUTH, DENIED = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED


@dataclass
class Context:
    """The two things Authenticator reads from a grpc.ServicerContext."""

    metadata: list[tuple[str, str | bytes]] = field(default_factory=list)
    common_names: list[bytes] = field(default_factory=list)

    def invocation_metadata(self) -> list[tuple[str, str | bytes]]:
        return self.metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_common_name": self.common_names} if self.common_names else {}


@pytest.fixture
def registry(tmp_path: Path) -> CallerRegistry:
    return CallerRegistry(tmp_path / "callers.sqlite")


@pytest.fixture
def keys(registry: CallerRegistry) -> dict[str, str]:
    return {
        cid: registry.add(cid, "agency", "汶川县民政局", "513221")[1]
        for cid in ("agency-a", "agency-b")
    }


def bearer(key: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {key}")


def refused(registry: CallerRegistry, ctx: Context) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(GovgwError) as e:
        Authenticator(registry).authenticate(ctx)  # type: ignore[arg-type]
    return e.value.code, e.value.reason


def test_a_key_or_a_certificate_names_the_caller(
    registry: CallerRegistry, keys: dict[str, str]
) -> None:
    auth = Authenticator(registry)
    by_key: Caller = auth.authenticate(Context([bearer(keys["agency-a"])]))  # type: ignore[arg-type]
    assert by_key.id == "agency-a"
    by_cert = auth.authenticate(Context(common_names=[b"agency-b"]))  # type: ignore[arg-type]
    assert by_cert.id == "agency-b"
    both = Context([bearer(keys["agency-b"])], [b"agency-b"])
    assert auth.authenticate(both).id == "agency-b"  # type: ignore[arg-type]


@pytest.mark.requirement("R12")
def test_no_credentials(registry: CallerRegistry) -> None:
    assert refused(registry, Context([("x-other", "1")])) == (UNAUTH, "CREDENTIALS_MISSING")


@pytest.mark.parametrize("value", ["Basic abc", "bearer", "Token gk_x", "", "Bearer"], ids=repr)
def test_malformed_authorization_header(registry: CallerRegistry, value: str) -> None:
    ctx = Context([("authorization", value)])
    assert refused(registry, ctx) == (UNAUTH, "AUTHORIZATION_MALFORMED")


def test_unknown_api_key(registry: CallerRegistry, keys: dict[str, str]) -> None:
    for key in ("gk_not-a-key", keys["agency-a"] + "x", ""):
        ctx = Context([bearer(key)])
        assert refused(registry, ctx) == (UNAUTH, "API_KEY_INVALID")


def test_two_authorization_headers_are_ambiguous(
    registry: CallerRegistry, keys: dict[str, str]
) -> None:
    # Neither is taken: not the first (today's proxies may see the other), not a valid one.
    for pair in (
        [bearer(keys["agency-a"]), bearer(keys["agency-b"])],
        [bearer(keys["agency-a"]), bearer(keys["agency-a"])],
        [bearer(keys["agency-a"]), bearer("gk_not-a-key")],
        [bearer("gk_not-a-key"), bearer(keys["agency-a"])],
    ):
        assert refused(registry, Context(pair)) == (UNAUTH, "AUTHORIZATION_AMBIGUOUS")
    mixed_case = Context(
        [bearer(keys["agency-a"]), ("Authorization", f"Bearer {keys['agency-b']}")]
    )
    assert refused(registry, mixed_case) == (UNAUTH, "AUTHORIZATION_AMBIGUOUS")


def test_a_certificate_naming_no_registered_caller_is_refused(
    registry: CallerRegistry, keys: dict[str, str]
) -> None:
    for name in (b"agency-unknown", b"AGENCY-A", b"agency-a ", b"-"):
        assert refused(registry, Context(common_names=[name])) == (
            UNAUTH,
            "CERTIFICATE_UNKNOWN_CALLER",
        )
    # Nor does a valid key make an unknown certificate acceptable.
    ctx = Context([bearer(keys["agency-a"])], [b"agency-unknown"])
    assert refused(registry, ctx) == (UNAUTH, "CERTIFICATE_UNKNOWN_CALLER")


def test_a_certificate_with_two_names_is_ambiguous(registry: CallerRegistry, keys) -> None:
    ctx = Context(common_names=[b"agency-a", b"agency-b"])
    assert refused(registry, ctx) == (UNAUTH, "CERTIFICATE_AMBIGUOUS")


def test_key_and_certificate_naming_different_callers_conflict(
    registry: CallerRegistry, keys: dict[str, str]
) -> None:
    ctx = Context([bearer(keys["agency-a"])], [b"agency-b"])
    assert refused(registry, ctx) == (UNAUTH, "CREDENTIALS_CONFLICT")


@pytest.mark.requirement("R10")
def test_a_suspended_caller_is_refused_by_key_and_by_certificate(
    registry: CallerRegistry, keys: dict[str, str]
) -> None:
    registry.set_status("agency-a", "suspended")
    for ctx in (Context([bearer(keys["agency-a"])]), Context(common_names=[b"agency-a"])):
        assert refused(registry, ctx) == (DENIED, "CALLER_SUSPENDED")
    registry.set_status("agency-a", "active")
    reinstated = Authenticator(registry).authenticate(Context(common_names=[b"agency-a"]))  # type: ignore[arg-type]
    assert reinstated.id == "agency-a"
