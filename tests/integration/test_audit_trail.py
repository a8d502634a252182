"""The audit trail as the server writes it: every call, durable first, no personal data."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from clients.sdk import GovgwClient, GovgwClientError
from gateway import admin
from gateway.audit import verify_chain
from tests.support import Harness, expect_error, free_port, make_data_dir, serve_subprocess, start

PURPOSE = "户籍业务办理"


@pytest.mark.requirement("R12")
def test_every_call_allowed_or_denied_is_recorded_with_its_decision(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("counter-wenchuan") as gw:
        ok = gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
    with gateway.client("public-portal") as gw:
        denied = expect_error(
            lambda: gw.lookup("population.basic", adult["id_number"], purpose="查询"),
            grpc.StatusCode.PERMISSION_DENIED,
            "DATASET_NOT_OPEN",
        )
    records = {r["request_id"]: r for r in gateway.audit_records()}
    a, d = records[ok.request_id], records[denied.request_id]
    assert a["decision"] == "allow" and a["outcome"] == "OK" and a["answer"] == "MATCH"
    assert a["caller"] == "counter-wenchuan" and a["action"] == "verify.identity"
    assert a["subject"] == gateway.parts.keyring.subject_hash(adult["id_number"])
    assert a["receipt_id"] == ok.receipt.receipt_id
    assert a["policy_version"] and a["plan_hash"] and a["purpose"] == "household_registration"
    assert (
        d["decision"] == "deny"
        and d["outcome"] == "PERMISSION_DENIED"
        and d["reason"] == "DATASET_NOT_OPEN"
    )
    assert d["input"]["fields"] == []
    text = gateway.audit_text()
    for value in (adult["id_number"], adult["name"], adult["phone"]):
        assert value not in text
    assert verify_chain(gateway.config.layout.audit).ok


def test_a_response_is_sent_only_after_its_record_is_on_disk(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("agency-civil") as gw:
        for _ in range(20):
            r = gw.lookup("population.basic", adult["id_number"], ["gender"], purpose=PURPOSE)
            assert r.request_id in gateway.audit_text()


def test_batch_lookup_records_one_audit_record_per_subject(gateway: Harness) -> None:
    adult, minor = gateway.demo["adult_resident"], gateway.demo["minor"]
    with gateway.client("agency-civil") as gw:
        items = list(
            gw.batch_lookup(
                "population.basic",
                [adult["id_number"], minor["id_number"]],
                ["gender"],
                purpose=PURPOSE,
            )
        )
    rid = items[0].request_id
    subjects = [r["subject"] for r in gateway.audit_records() if r["request_id"] == rid]
    keyring = gateway.parts.keyring
    assert subjects == [
        keyring.subject_hash(adult["id_number"]),
        keyring.subject_hash(minor["id_number"]),
    ]


@pytest.mark.requirement("R12")
def test_audit_that_cannot_be_written_fails_the_call_closed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    keys, demo = make_data_dir(data_dir, persons=40, entities=10)
    audit = data_dir / "audit" / "audit.log"
    audit.parent.mkdir(parents=True, exist_ok=True)
    if audit.exists():
        audit.unlink()
    os.symlink("/dev/full", audit)  # a real ENOSPC on every write
    h = start(data_dir, keys, demo)
    try:
        adult = demo["adult_resident"]
        with h.client("agency-civil") as gw:
            e = expect_error(
                lambda: gw.lookup("population.basic", adult["id_number"], purpose=PURPOSE),
                grpc.StatusCode.UNAVAILABLE,
                "AUDIT_UNAVAILABLE",
            )
            assert adult["name"] not in json.dumps(e.to_json(), ensure_ascii=False)
            expect_error(
                lambda: gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE),
                grpc.StatusCode.UNAVAILABLE,
                "AUDIT_UNAVAILABLE",
            )
    finally:
        h.stop()


@pytest.mark.timeout(180)
def test_sigkill_under_load_loses_no_answered_call(tmp_path: Path) -> None:
    """Every response a client received has its audit record, and the chain verifies."""
    data_dir = tmp_path / "data"
    keys, demo = make_data_dir(data_dir, persons=60, entities=10)
    proc = serve_subprocess(data_dir, port := free_port())
    answered: list[str] = []
    failures: list[str] = []
    stop = threading.Event()
    adult = demo["adult_resident"]

    def load() -> None:
        with GovgwClient(f"127.0.0.1:{port}", api_key=keys["agency-civil"], timeout_s=5) as gw:
            while not stop.is_set():
                try:
                    r = gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
                    answered.append(r.request_id)
                except GovgwClientError as e:
                    failures.append(e.code.name)
                    if e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                        return

    try:
        threads = [threading.Thread(target=load) for _ in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(answered) >= 50, f"too little load before the kill: {len(answered)} answered"
    report = admin.audit_verify(data_dir)
    assert report["ok"], report
    recorded = {
        json.loads(line)["request_id"]
        for line in (data_dir / "audit" / "audit.log").read_text().splitlines()
        if line.endswith("}")
    }
    missing = [rid for rid in answered if rid not in recorded]
    assert not missing, f"{len(missing)} answered calls have no audit record"
