"""Authentication, health, reflection, TLS and lifecycle of a real server."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clients.sdk import GovgwClient, GovgwClientError
from gateway import admin
from gateway.callers import CallerRegistry
from gateway.config import ConfigError, ServeConfig
from gateway.tls import write_client_cert
from tests.support import Harness, eventually, expect_error, make_data_dir, start

UNAUTH = grpc.StatusCode.UNAUTHENTICATED
PURPOSE = "户籍业务办理"
TLS_NAME = [("grpc.ssl_target_name_override", "localhost")]


@pytest.mark.requirement("R12")
def test_calls_without_credentials_are_unauthenticated(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client(None) as gw:
        expect_error(
            lambda: gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE),
            UNAUTH,
            "CREDENTIALS_MISSING",
        )
    with gateway.client(None, api_key="gk_not-a-key") as gw:
        expect_error(lambda: gw.list_datasets(), UNAUTH, "API_KEY_INVALID")


def list_datasets_with(gateway: Harness, metadata: tuple[tuple[str, str], ...]) -> None:
    """ListDatasets with exactly this metadata (the SDK sends one header, well formed)."""
    from govgw.v1 import catalog_pb2, catalog_pb2_grpc

    stub = catalog_pb2_grpc.CatalogServiceStub(gateway.channel())
    try:
        stub.ListDatasets(catalog_pb2.ListDatasetsRequest(), metadata=metadata)
    except grpc.RpcError as e:
        raise GovgwClientError.from_rpc_error(e) from None


def test_malformed_authorization_header(gateway: Harness) -> None:
    for value in ("Basic abc", "gk_raw-key-without-scheme", "Bearer"):
        expect_error(
            lambda v=value: list_datasets_with(gateway, (("authorization", v),)),
            UNAUTH,
            "AUTHORIZATION_MALFORMED",
        )


def test_two_authorization_headers_are_refused_as_ambiguous(gateway: Harness) -> None:
    civil, far = gateway.keys["agency-civil"], gateway.keys["agency-far"]
    assert list_datasets_with(gateway, (("authorization", f"Bearer {civil}"),)) is None
    # Whichever comes first, and even when both are the same valid key: none is taken.
    for first, second in ((civil, far), (far, civil), (civil, civil), ("gk_nope", civil)):
        headers = (("authorization", f"Bearer {first}"), ("authorization", f"Bearer {second}"))
        expect_error(
            lambda h=headers: list_datasets_with(gateway, h), UNAUTH, "AUTHORIZATION_AMBIGUOUS"
        )


@pytest.mark.requirement("R10")
def test_suspended_caller_is_refused(gateway: Harness) -> None:
    doc = admin.callers_add(gateway.data_dir, "agency-suspended", "agency", "某局", "513221")
    registry = CallerRegistry(gateway.config.layout.callers)
    with gateway.client(None, api_key=doc["api_key"]) as gw:
        assert gw.list_datasets()
        registry.set_status("agency-suspended", "suspended")
        # The CLI suspends from another process; the server sees it within REFRESH_S.
        eventually(
            lambda: expect_error(
                lambda: gw.list_datasets(), grpc.StatusCode.PERMISSION_DENIED, "CALLER_SUSPENDED"
            ),
            within_s=1.0,
        )


def test_health_and_reflection(gateway: Harness) -> None:
    ch = gateway.channel()
    health = health_pb2_grpc.HealthStub(ch)
    for service in ("", "govgw.v1.VerificationService", "govgw.v1.LookupService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    (resp,) = list(
        refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in resp.list_services_response.service}
    assert {
        "govgw.v1.VerificationService",
        "govgw.v1.LookupService",
        "govgw.v1.CatalogService",
        "govgw.v1.ReceiptService",
    } <= names


@pytest.mark.requirement("R12")
def test_plaintext_is_refused_off_loopback(tmp_path) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        ServeConfig(data_dir=tmp_path, listen="0.0.0.0:50051").validate()
    ServeConfig(data_dir=tmp_path, listen="0.0.0.0:50051", tls=True).validate()
    ServeConfig(data_dir=tmp_path, listen="[::1]:50051").validate()


@pytest.mark.requirement("R12")
def test_tls_with_api_keys(tmp_path) -> None:
    data_dir = tmp_path / "data"
    keys, demo = make_data_dir(data_dir, persons=40, entities=10)
    h = start(data_dir, keys, demo, tls=True)
    try:
        ca = data_dir / "tls" / "ca.crt"
        adult = demo["adult_resident"]
        with GovgwClient(
            h.target, ca_cert=ca, api_key=keys["agency-civil"], options=TLS_NAME
        ) as gw:
            assert gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE).matched
        with GovgwClient(h.target, ca_cert=ca, options=TLS_NAME) as gw:
            expect_error(lambda: gw.list_datasets(), UNAUTH, "CREDENTIALS_MISSING")
        # A plaintext client cannot talk to a TLS server.
        with GovgwClient(h.target, api_key=keys["agency-civil"], timeout_s=2) as gw:
            with pytest.raises(GovgwClientError) as e:
                gw.list_datasets()
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        h.stop()


@pytest.mark.requirement("R10", "R12")
def test_mutual_tls_identifies_the_caller_by_certificate(tmp_path) -> None:
    data_dir = tmp_path / "data"
    keys, demo = make_data_dir(data_dir, persons=40, entities=10)
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    admin.callers_add(data_dir, "agency-mtls", "agency", "某局", "513221", cert_out=cert_dir)
    admin.callers_add(data_dir, "agency-other", "agency", "某局", "513221", cert_out=cert_dir)
    h = start(data_dir, keys, demo, tls=True, require_client_cert=True)
    try:
        ca = data_dir / "tls" / "ca.crt"
        adult = demo["adult_resident"]
        mtls = {
            "ca_cert": ca,
            "client_cert": cert_dir / "agency-mtls.crt",
            "client_key": cert_dir / "agency-mtls.key",
        }
        with GovgwClient(h.target, options=TLS_NAME, **mtls) as gw:
            r = gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
            assert r.matched and r.receipt.claims.caller == "agency-mtls"
        # A key that names another caller than the certificate is refused.
        with GovgwClient(h.target, options=TLS_NAME, api_key=keys["agency-civil"], **mtls) as gw:
            expect_error(lambda: gw.list_datasets(), UNAUTH, "CREDENTIALS_CONFLICT")
        # A certificate from the gateway's own CA whose name is no registered caller
        # (issued, then never registered, or the caller's id mistyped) is refused,
        # with a valid key beside it or without.
        ghost_crt, ghost_key = write_client_cert(data_dir, "agency-ghost", cert_dir)
        ghost = {"ca_cert": ca, "client_cert": ghost_crt, "client_key": ghost_key}
        for api_key in (None, keys["agency-civil"]):
            with GovgwClient(h.target, options=TLS_NAME, api_key=api_key, **ghost) as gw:
                expect_error(lambda: gw.list_datasets(), UNAUTH, "CERTIFICATE_UNKNOWN_CALLER")
        # A registered caller's certificate stops working when the caller is suspended.
        CallerRegistry(h.config.layout.callers).set_status("agency-other", "suspended")
        other = {
            "ca_cert": ca,
            "client_cert": cert_dir / "agency-other.crt",
            "client_key": cert_dir / "agency-other.key",
        }
        with GovgwClient(h.target, options=TLS_NAME, **other) as gw:
            eventually(
                lambda: expect_error(
                    lambda: gw.list_datasets(), grpc.StatusCode.PERMISSION_DENIED,
                    "CALLER_SUSPENDED",
                ),
                within_s=1.0,
            )  # fmt: skip
        # Without a client certificate the handshake itself fails.
        with GovgwClient(
            h.target, ca_cert=ca, api_key=keys["agency-civil"], options=TLS_NAME, timeout_s=2
        ) as gw:
            with pytest.raises(GovgwClientError) as e:
                gw.list_datasets()
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        h.stop()
