"""gateway.metrics and its settings: bounded labels, the version served, where it listens."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from gateway.config import ConfigError, ServeConfig
from gateway.logs import formatter
from gateway.metrics import MAX_REASONS, OTHER, Metrics

VERIFY = "govgw.v1.VerificationService/VerifyIdentity"


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_a_reason_that_is_not_a_reason_code_is_counted_as_other() -> None:
    m = Metrics()
    m.call_done(VERIFY, "PERMISSION_DENIED", "为张三办理 13800000000", 0.001)
    m.call_done(VERIFY, "PERMISSION_DENIED", "DENIED_BY_POLICY", 0.001)
    assert sample(m, "govgw_calls_total", method=VERIFY, code="PERMISSION_DENIED", reason=OTHER)
    text = generate_latest(m.registry).decode()
    assert "张三" not in text and "13800000000" not in text
    assert 'reason="DENIED_BY_POLICY"' in text


def test_reasons_past_the_cap_are_counted_as_other() -> None:
    m = Metrics()
    for i in range(MAX_REASONS + 10):
        m.call_done(VERIFY, "PERMISSION_DENIED", f"POLICY_REASON_{i}", 0.001)
    reasons = {
        s.labels["reason"]
        for f in m.registry.collect()
        if f.name == "govgw_calls"
        for s in f.samples
        if s.name == "govgw_calls_total"
    }
    assert len(reasons) == MAX_REASONS + 1 and OTHER in reasons


def test_limit_refusals_and_suspensions_are_counted_by_reason() -> None:
    m = Metrics()
    m.call_done(VERIFY, "RESOURCE_EXHAUSTED", "RATE_LIMITED", 0.001)
    m.call_done(VERIFY, "OK", "", 0.001, suspensions=["NO_MATCH_RATIO"])
    m.call_done(VERIFY, "NOT_FOUND", "SUBJECT_NOT_FOUND", 0.001)  # not a limit
    assert sample(m, "govgw_limit_refusals_total", reason="RATE_LIMITED") == 1
    assert sample(m, "govgw_suspensions_total", reason="NO_MATCH_RATIO") == 1
    assert sample(m, "govgw_limit_refusals_total", reason="SUBJECT_NOT_FOUND") is None


def test_the_version_served_is_1_and_the_one_it_replaced_0() -> None:
    m = Metrics()
    m.policy_served("pv-1")
    m.policy_served("pv-2")
    assert sample(m, "govgw_policy_version_info", version="pv-2") == 1
    assert sample(m, "govgw_policy_version_info", version="pv-1") == 0


@pytest.mark.parametrize(
    ("listen", "tls", "message"),
    [
        ("0.0.0.0:9100", False, "refusing plaintext"),
        ("9100", False, "expected HOST:PORT"),
        ("127.0.0.1:99999", False, "expected HOST:PORT"),
        ("127.0.0.1:50051", False, "must differ"),
    ],
)
def test_metrics_listen_is_checked(listen: str, tls: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServeConfig(Path("d"), metrics_listen=listen, tls=tls).validate()


def test_metrics_leave_loopback_only_over_tls() -> None:
    ServeConfig(
        Path("d"), listen="0.0.0.0:50051", metrics_listen="0.0.0.0:9100", tls=True
    ).validate()


def test_log_format_is_checked() -> None:
    with pytest.raises(ConfigError, match="log-format"):
        ServeConfig(Path("d"), log_format="yaml").validate()


def test_a_json_line_has_the_call_fields_and_the_worker_tag() -> None:
    record = logging.LogRecord(
        "govgw.pipeline", logging.INFO, __file__, 1, "request %s", ("r",), None
    )
    record.request_id, record.code, record.latency_ms = "req_1", "OK", 1.5
    doc = json.loads(formatter("json", worker=1).format(record))
    assert doc["level"] == "INFO" and doc["logger"] == "govgw.pipeline"
    assert doc["message"] == "request r" and doc["worker"] == 1
    assert doc["request_id"] == "req_1" and doc["latency_ms"] == 1.5 and doc["timestamp"]
    assert " w1 INFO govgw.pipeline request r" in formatter("text", worker=1).format(record)


def test_the_decider_counts_its_cache_and_reports_the_version_it_swaps_to(tmp_path: Path) -> None:
    from gateway.policy.bundle import PolicyBundle, bundle_version, load_bundle
    from gateway.policy.engine import RegorusEngine
    from tests.gateway.policy.test_decider import POLICIES, ask, decider, engine

    m = Metrics()
    d = decider(tmp_path)
    d.metrics = m
    m.policy_served(d.serving.version)
    ask(d)
    ask(d)
    assert sample(m, "govgw_plan_cache_hits_total") == 1
    assert sample(m, "govgw_plan_cache_misses_total") == 1
    bundle = load_bundle(POLICIES)
    modules = {**bundle.modules, "extra.rego": "package govgw.extra\nimport rego.v1\nx := 1\n"}
    d.engine = RegorusEngine(
        PolicyBundle(modules, bundle.data, bundle_version(modules, bundle.data))
    )
    assert sample(m, "govgw_policy_version_info", version=d.serving.version) == 1
    assert sample(m, "govgw_policy_version_info", version=engine().version) == 0


def test_an_unknown_log_format_from_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clients.cli import main

    monkeypatch.setenv("GOVGW_LOG_FORMAT", "yaml")
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--data-dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--log-format: 'yaml' is not one of text, json" in capsys.readouterr().err
