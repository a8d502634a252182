"""`govgw serve --metrics-listen --log-format json`: what operators watch, from outside.

A real `govgw serve` child process on loopback; /metrics scraped over HTTP as
Prometheus does; its stderr read as the JSON lines a log pipeline gets. Counts
are compared before and after the calls a test makes, so the tests do not
depend on one another's order.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from clients.sdk import GovgwClient, GovgwClientError
from gateway.metrics import LIMIT_REASONS, OTHER, SUSPENSION_REASONS
from tests.integration.test_privacy_properties import id_numbers, names, phones
from tests.scrape import Scrape, assert_call_lines, json_lines, scrape
from tests.support import free_port, make_data_dir, start

PURPOSE = "户籍业务办理"
VERIFY = "govgw.v1.VerificationService/VerifyIdentity"
RECEIPT_KEYS = "govgw.v1.ReceiptService/ListReceiptKeys"
MIN_ANSWERS = 20  # OracleConfig's default: answers before the miss ratio is judged
DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = Path(tmp_path_factory.mktemp("metrics"))
    keys, demo = make_data_dir(tmp / "data", persons=40, entities=10)
    port, mport = free_port(), free_port()
    log = tmp / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve", "--data-dir", str(tmp / "data"),
             "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}",
             "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (_accepts(port) and _accepts(mport)):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield {"port": port, "mport": mport, "keys": keys, "demo": demo, "log": log,
           "data": tmp / "data"}  # fmt: skip
    proc.terminate()
    assert proc.wait(timeout=30) == 0, log.read_text()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def client(served: dict[str, Any], caller: str | None, api_key: str = "") -> GovgwClient:
    key = api_key or served["keys"][caller]
    return GovgwClient(f"127.0.0.1:{served['port']}", api_key=key)


def refusal(fn: Any) -> GovgwClientError:
    try:
        fn()
    except GovgwClientError as e:
        return e
    raise AssertionError("the call succeeded")


def fabricated_id(i: int) -> str:
    body = f"51322419700101{i:03d}"
    return body + ric.calc_check_digit(body + "0")


@pytest.mark.requirement("R12")
def test_calls_and_refusals_are_counted_with_their_code_and_reason(served) -> None:
    adult = served["demo"]["adult_resident"]
    before = scrape(served["mport"])
    with client(served, "agency-civil") as gw:
        answers = [gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
                   for _ in range(3)]  # fmt: skip
        bad_id = refusal(lambda: gw.verify_identity("张三", "123", purpose=PURPOSE))
    with client(served, None, api_key="gk_not-a-key") as gw:
        bad_key = refusal(
            lambda: gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
        )
    assert bad_id.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_key.code == grpc.StatusCode.UNAUTHENTICATED
    after = scrape(served["mport"])

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("govgw_calls_total", method=VERIFY, code="OK") == 3
    assert delta("govgw_calls_total", method=VERIFY, code="INVALID_ARGUMENT",
                 reason=bad_id.reason) == 1  # fmt: skip
    assert delta("govgw_calls_total", method=VERIFY, code="UNAUTHENTICATED",
                 reason=bad_key.reason) == 1  # fmt: skip
    # The latency histogram took all five, each in some bucket.
    assert delta("govgw_call_duration_seconds_count", method=VERIFY) == 5
    assert delta("govgw_call_duration_seconds_bucket", method=VERIFY, le="+Inf") == 5
    assert delta("govgw_call_duration_seconds_sum", method=VERIFY) > 0
    # One decision per verified call (the malformed and the unauthenticated decide nothing)
    # and per fetch of the receipt keys (the SDK's, to check receipts); the same caller,
    # purpose and version: the cache answers after the first.
    hits, misses = delta("govgw_plan_cache_hits_total"), delta("govgw_plan_cache_misses_total")
    keys_fetched = delta("govgw_calls_total", method=RECEIPT_KEYS, code="OK")
    assert hits + misses == 3 + keys_fetched and hits >= 2
    # Every call was audited, refusals too, and the records were synced.
    assert delta("govgw_audit_records_total") == 5 + keys_fetched
    assert delta("govgw_audit_fsync_duration_seconds_count") >= 1
    assert after.value("govgw_audit_records_total") == len(
        (served["data"] / "audit" / "audit.log").read_text().splitlines()
    )
    assert "govgw_audit_queue_records" in after.names
    # The version the answers name is the one served.
    version = answers[0].policy_version
    assert after.value("govgw_policy_version_info", version=version) == 1
    assert after.labels("govgw_policy_version_info", "version") == {version}
    assert after.labels("govgw_build_info", "version")


@pytest.mark.requirement("R10")
def test_suspension_and_the_refusals_after_it_are_counted(served) -> None:
    before = scrape(served["mport"])
    refused = []
    with client(served, "counter-songpan") as gw:
        for i in range(MIN_ANSWERS + 5):
            try:
                gw.verify_identity("张伟", fabricated_id(i), purpose=PURPOSE)
            except GovgwClientError as e:
                assert e.reason == "CALLER_SUSPENDED", e
                refused.append(e)
    assert len(refused) == 5
    after = scrape(served["mport"])
    assert after.value("govgw_suspensions_total") - before.value("govgw_suspensions_total") == 1
    assert after.labels("govgw_suspensions_total", "reason") <= {"NO_MATCH_RATIO",
                                                                 "SUBJECT_SPREAD"}  # fmt: skip
    for name in ("govgw_limit_refusals_total", "govgw_calls_total"):
        got = after.value(name, reason="CALLER_SUSPENDED") - before.value(
            name, reason="CALLER_SUSPENDED"
        )
        assert got == 5, name
    log = json_lines(served["log"])
    assert_call_lines(log, [e.request_id for e in refused])
    assert {d["code"] for d in log if d.get("request_id") in {e.request_id for e in refused}} == {
        "PERMISSION_DENIED"
    }


@pytest.mark.requirement("R12")
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=names, id_number=id_numbers(), phone=phones, variant=st.integers(0, 2))
def test_no_name_id_number_or_phone_in_metrics_or_logs(
    served, name: str, id_number: str, phone: str, variant: int
) -> None:
    """Whatever a caller sends, /metrics and the log lines hold ids and codes only."""
    purpose = [PURPOSE, f"{PURPOSE}，联系{phone}", f"为{name}办理户籍"][variant]
    with client(served, "agency-far") as gw:
        try:
            gw.verify_identity(name, id_number, purpose=purpose)
        except GovgwClientError as e:
            assert e.code in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED}
    got = scrape(served["mport"])
    logs = served["log"].read_text(encoding="utf-8")
    for value in (name, id_number, id_number[:17], phone):
        # As a token of its own: a float sample (1.1300000000000001 seconds of CPU) may
        # hold a phone-like run of digits inside it.
        shown = re.compile(rf"(?<![0-9])(?<![0-9][.]){re.escape(value)}(?![0-9])")
        assert not shown.search(got.text), value
        assert not shown.search(logs), value
    assert_closed_labels(got)


def assert_closed_labels(got: Scrape) -> None:
    """Every label of the gateway's metrics takes values from a set the gateway defines."""
    codes = {c.name for c in grpc.StatusCode}
    for s in got.samples:
        if not s.name.startswith("govgw_"):
            continue
        for label, value in s.labels.items():
            if label == "method":
                assert re.fullmatch(r"govgw\.v1\.[A-Za-z]+/[A-Za-z]+", value), value
            elif label == "code":
                assert value in codes, value
            elif label == "reason":
                assert value == "" or value == OTHER or re.fullmatch(r"[A-Z][A-Z0-9_]*", value)
            elif label not in {"le", "version", "python", "grpc"}:
                raise AssertionError(f"{s.name}: unexpected label {label}={value}")


def test_limit_and_suspension_reasons_are_the_ones_the_gateway_gives() -> None:
    from gateway import errors, limits, oracle

    source = Path(limits.__file__).read_text() + Path(errors.__file__).read_text()
    for reason in LIMIT_REASONS:
        assert f'"{reason}"' in source, reason
    source = Path(oracle.__file__).read_text()
    for reason in SUSPENSION_REASONS:
        assert f'"{reason}"' in source, reason


def test_every_dashboard_query_reads_metrics_the_gateway_serves(served) -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    assert len(exprs) >= len(doc["panels"]) >= 9
    # A call or two first, so that every labelled series has appeared at least once.
    with client(served, "agency-civil") as gw:
        adult = served["demo"]["adult_resident"]
        gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
    live = scrape(served["mport"]).names
    titles = " ".join(p["title"] for p in doc["panels"]).lower()
    for topic in ("calls", "error", "latency", "queue", "fsync", "cache", "limit", "policy"):
        assert topic in titles, topic
    for expr in exprs:
        used = set(re.findall(r"\bgovgw_[a-z0-9_]+", expr))
        assert used, expr
        assert used <= live, (expr, used - live)


def test_with_tls_the_metrics_are_https_with_the_gateways_certificate(tmp_path: Path) -> None:
    keys, demo = make_data_dir(tmp_path / "data", persons=20, entities=5)
    h = start(tmp_path / "data", keys, demo, tls=True, metrics_listen="127.0.0.1:0")
    try:
        url = f"https://127.0.0.1:{h.server.metrics_port}/metrics"
        trust = ssl.create_default_context(cafile=str(tmp_path / "data" / "tls" / "ca.crt"))
        with urllib.request.urlopen(url, context=trust, timeout=10) as r:
            assert b"govgw_build_info" in r.read()
        # Not readable as plaintext, nor by a client that does not trust the gateway's CA.
        with pytest.raises((OSError, http.client.HTTPException)):
            urllib.request.urlopen(url.replace("https", "http"), timeout=10).read()
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(url, context=ssl.create_default_context(), timeout=10)
    finally:
        h.stop()
