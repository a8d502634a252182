"""VerifyIdentityBatch (issue 13 part 4) against a real gateway on loopback: per-item
answers in order, one audit record per item under its subject, one Merkle-signed set
of receipts per call, the caps, authentication before any item, and bounded input
consumption in the SDK."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from govgw.v1 import verification_pb2
from stdnum.cn import ric

from clients.sdk import AsyncGovgwClient, GovgwClientError
from clients.sdk.batch import IN_FLIGHT
from gateway import admin
from gateway.access.subject_tokens import load_private_key, mint
from gateway.audit import verify_chain
from tests.support import Harness, expect_error, make_data_dir, start

PURPOSE = "户籍业务办理"


def fake_id_numbers(n: int, start: int = 0) -> list[str]:
    """Valid-looking ID numbers (right check digit) that are not in the demo pool."""
    out = []
    for i in range(start, start + n):
        body = f"51322119700101{i % 1000:03d}"[:17] if n <= 1000 else f"5132211{i:010d}"[:17]
        out.append(body + ric.calc_check_digit(body + "0"))
    return out


def mixed_items(demo: dict[str, Any]) -> list[tuple[str, str]]:
    adult, minor, recipient = (demo[k] for k in ("adult_resident", "minor", "assistance_recipient"))
    return [
        (adult["name"], adult["id_number"]),  # 0 MATCH
        ("王某某", adult["id_number"]),  # 1 wrong name: NO_MATCH
        (minor["name"], minor["id_number"]),  # 2 MATCH
        (minor["name"], adult["id_number"][:17] + "0"),  # 3 bad check digit: refused
        ("", recipient["id_number"]),  # 4 empty name: refused
        (recipient["name"], recipient["id_number"]),  # 5 MATCH
    ]


def govgw(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


@pytest.mark.requirement("R4")
@pytest.mark.requirement("R12")
def test_a_batch_answers_each_item_in_order_and_audits_each_under_its_subject(
    gateway: Harness,
) -> None:
    items = mixed_items(gateway.demo)
    with gateway.client("counter-wenchuan") as gw:
        results = list(gw.verify_identity_batch(items, purpose=PURPOSE))
    assert [r.index for r in results] == list(range(len(items)))
    assert [r.result.name for r in results] == [
        "MATCH", "NO_MATCH", "MATCH", "UNSPECIFIED", "UNSPECIFIED", "MATCH",
    ]  # fmt: skip
    refused = {r.index: r.refusal for r in results if r.refusal is not None}
    assert set(refused) == {3, 4}
    assert refused[3].code == "INVALID_ARGUMENT" and refused[3].fields == ("items[3].id_number",)
    assert refused[4].reason == "NAME_INVALID" and refused[4].fields == ("items[4].name",)
    # One signature for the call: every answered item's receipt is a batch receipt,
    # verified on arrival, with its own salt that opens its own commitment.
    answered = [r for r in results if r.refusal is None]
    assert all(r.receipt is not None and r.receipt.verified for r in answered)
    tokens = {r.receipt.signed.batch.signature for r in answered if r.receipt}
    assert len(tokens) == 1
    salts = {r.receipt.salt for r in answered if r.receipt}
    assert len(salts) == len(answered)
    for r in answered:
        assert r.receipt is not None and r.receipt.opens(items[r.index][1])
        assert r.receipt.claims.outcome == r.result.name
    # One audit record per item, under the item's subject hash, with its answer.
    request_id = results[0].request_id
    records = [x for x in gateway.audit_records() if x["request_id"] == request_id]
    assert len(records) == len(items)
    ring = gateway.parts.keyring
    by_receipt = {x.get("receipt_id"): x for x in records}
    for r in answered:
        assert r.receipt is not None
        x = by_receipt[r.receipt.receipt_id]
        assert x["subject"] == ring.subject_hash(items[r.index][1])
        assert x["answer"] == r.result.name and x["outcome"] == "OK"
        assert x["action"] == "verify.identity" and x["purpose"] == "household_registration"
    assert sorted(v for x in records for v in x["input"]["violations"]) == [
        "items[3].id_number",
        "items[4].name",
    ]
    text = gateway.audit_text()
    for name, id_number in items:
        assert id_number not in text and (not name or name not in text)
    assert verify_chain(gateway.config.layout.audit).ok


@pytest.mark.requirement("R8")
def test_a_subject_sees_the_batch_call_in_their_usage_listing(gateway: Harness) -> None:
    minor = gateway.demo["minor"]
    with gateway.client("counter-wenchuan") as gw:
        (r,) = gw.verify_identity_batch([(minor["name"], minor["id_number"])], purpose=PURPOSE)
    key = load_private_key((gateway.data_dir / "keys" / "demo-subject-issuer.pem").read_bytes())
    token = mint(
        key, issuer=admin.DEMO_ISSUER, subject=minor["id_number"], now=gateway.parts.clock()
    )
    with gateway.client("public-portal") as public:
        uses = public.all_my_usage(token)
    mine = [u for u in uses if u.request_id == r.request_id]
    assert len(mine) == 1 and mine[0].caller == "counter-wenchuan"
    assert mine[0].action == "verify.identity" and mine[0].outcome == "OK"


@pytest.mark.requirement("R12")
def test_more_than_10000_items_is_refused_whole(gateway: Harness) -> None:
    with gateway.client("counter-wenchuan") as gw:
        stub = gw.stub("verification")
        items = [verification_pb2.IdentityItem(name="张三", id_number="x")] * 1001
        messages = [verification_pb2.VerifyIdentityBatchRequest(purpose=PURPOSE, items=items)]
        messages += [verification_pb2.VerifyIdentityBatchRequest(items=items)] * 9
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.VerifyIdentityBatch(iter(messages), metadata=gw._metadata, timeout=60))
    e = GovgwClientError.from_rpc_error(caught.value)
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT and e.reason == "BATCH_TOO_LARGE"
    assert [v.field for v in e.violations] == ["items"]
    record = next(x for x in gateway.audit_records() if x["request_id"] == e.request_id)
    assert record["outcome"] == "INVALID_ARGUMENT" and record["subject"] == ""


@pytest.mark.requirement("R12")
def test_an_unauthenticated_batch_is_refused_before_any_item_is_read(gateway: Harness) -> None:
    pulled = 0

    def messages() -> Iterator[verification_pb2.VerifyIdentityBatchRequest]:
        nonlocal pulled
        for _ in range(5):
            pulled += 1
            yield verification_pb2.VerifyIdentityBatchRequest(
                purpose=PURPOSE, items=[verification_pb2.IdentityItem(name="a", id_number="b")]
            )

    with gateway.client(None) as gw:
        e = expect_error(
            lambda: list(gw.verify_identity_batch([("a", "b")], purpose=PURPOSE)),
            grpc.StatusCode.UNAUTHENTICATED,
            "CREDENTIALS_MISSING",
        )
        # The raw stub with a request stream that waits: the refusal comes on the
        # headers alone (the server never asks for a message).
        stub = gw.stub("verification")
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.VerifyIdentityBatch(_after_reply(messages()), timeout=30))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert pulled == 0
    record = next(x for x in gateway.audit_records() if x["request_id"] == e.request_id)
    assert record["outcome"] == "UNAUTHENTICATED"


def _after_reply(inner: Iterator[Any]) -> Iterator[Any]:
    """A request stream that sends nothing until the call has ended: only a
    server that answers on the headers can end it."""
    import threading

    never = threading.Event()
    never.wait(2)  # bounded: the call is already refused by then
    yield from inner


@pytest.mark.parametrize("in_flight", [1, 2])
def test_the_sdk_splits_a_large_input_and_reads_it_at_most_in_flight_calls_ahead(
    gateway: Harness, in_flight: int
) -> None:
    adult = gateway.demo["adult_resident"]
    consumed = 0
    total = 2_500

    def source() -> Iterator[tuple[str, str]]:
        nonlocal consumed
        for _ in range(total):
            consumed += 1
            yield ("王某某", adult["id_number"])

    batch = 500
    seen_at_first_result: list[int] = []
    request_ids = set()
    with gateway.client("agency-civil") as gw:
        results = gw.verify_identity_batch(
            source(), purpose=PURPOSE, batch_size=batch, in_flight=in_flight
        )
        for r in results:
            if r.index % batch == 0:
                seen_at_first_result.append(consumed)
            request_ids.add(r.request_id)
            assert r.result.name == "NO_MATCH"
    assert len(request_ids) == 5  # five calls of 500
    # When call k's first result is handed out, calls up to k + in_flight have been
    # taken from the input (the next one is sent while k's results are checked), and
    # not one item more: memory stays bounded however long the input.
    ends = [500, 1_000, 1_500, 2_000, 2_500]
    assert seen_at_first_result == [ends[min(k + in_flight, 4)] for k in range(5)]
    assert consumed == total


def test_the_asyncio_client_reads_at_most_in_flight_calls_ahead(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    consumed = 0

    async def source() -> Any:
        nonlocal consumed
        for _ in range(1_200):
            consumed += 1
            yield ("王某某", adult["id_number"])

    async def run() -> list[int]:
        seen = []
        async with AsyncGovgwClient(gateway.target, api_key=gateway.keys["agency-civil"]) as gw:
            results = gw.verify_identity_batch(
                source(), purpose=PURPOSE, batch_size=300, in_flight=2
            )
            async for r in results:
                assert r.result.name == "NO_MATCH"
                if r.index % 300 == 0:
                    seen.append(consumed)
        return seen

    # Four calls of 300, two in flight: at call k's first result, calls up to k + 2.
    assert asyncio.run(run()) == [900, 1_200, 1_200, 1_200]


def test_a_caller_that_stops_reading_ends_the_call_sent_ahead(gateway: Harness) -> None:
    """Breaking out after the first result: the input is not read past the calls sent
    ahead (which the SDK cancels), and the client goes on working."""
    adult = gateway.demo["adult_resident"]
    consumed = 0

    def source() -> Iterator[tuple[str, str]]:
        nonlocal consumed
        for _ in range(50):
            consumed += 1
            yield (adult["name"], adult["id_number"])

    with gateway.client("agency-civil") as gw:
        for r in gw.verify_identity_batch(source(), purpose=PURPOSE, batch_size=10):
            assert r.index == 0 and r.result.name == "MATCH"
            break
        # this call and the ones in flight with it (cancelled), nothing past them
        assert consumed == 10 * (IN_FLIGHT + 1)
        again = list(
            gw.verify_identity_batch([(adult["name"], adult["id_number"])], purpose=PURPOSE)
        )
        assert [r.result.name for r in again] == ["MATCH"]


def test_the_asyncio_client_streams_a_batch_from_an_async_iterable(gateway: Harness) -> None:
    items = mixed_items(gateway.demo)

    async def source() -> Any:
        for item in items:
            yield item

    async def run() -> list[Any]:
        async with AsyncGovgwClient(gateway.target, api_key=gateway.keys["counter-wenchuan"]) as gw:
            return [
                r async for r in gw.verify_identity_batch(source(), purpose=PURPOSE, batch_size=4)
            ]

    results = asyncio.run(run())
    assert [r.index for r in results] == list(range(len(items)))
    assert [r.result.name for r in results][:3] == ["MATCH", "NO_MATCH", "MATCH"]
    assert len({r.request_id for r in results}) == 2  # 4 + 2


def test_the_cli_writes_one_line_per_input_line_and_receipt_verify_checks_them(
    gateway: Harness, tmp_path: Path
) -> None:
    items = mixed_items(gateway.demo)
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps({"name": n, "id_number": i}, ensure_ascii=False) + "\n" for n, i in items
        )
        + "not json\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    key = gateway.keys["counter-wenchuan"]
    conn = ("--target", gateway.target, "--api-key", key)
    done = govgw(*conn, "--json", "verify", "batch", "--input", str(src), "--purpose", PURPOSE,
                 "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing but the JSON under --json (no progress)
    summary = json.loads(done.stdout)
    assert summary["items"] == 7 and summary["MATCH"] == 3 and summary["REFUSED"] == 3
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["index"] for x in lines] == list(range(7))
    assert lines[6]["result"] == "REFUSED" and lines[6]["refusal"]["fields"] == [
        "items[6].id_number",
        "items[6].name",
    ]
    keys = tmp_path / "keys.json"
    assert govgw(*conn, "receipt", "keys", "--out", str(keys)).returncode == 0
    ok = govgw("--json", "receipt", "verify", "--key-file", str(keys), str(out))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout) == {"valid": True, "lines": 7, "failures": []}
    # A line whose result is changed, or whose receipt is changed, fails.
    tampered = list(lines)
    tampered[1] = {**lines[1], "result": "MATCH"}
    tampered[2] = {**lines[2], "receipt": _tamper(lines[2]["receipt"])}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in tampered))
    failed = govgw("--json", "receipt", "verify", "--key-file", str(keys), str(bad))
    assert failed.returncode == 1
    report = json.loads(failed.stdout)["error"]
    assert [f["line"] for f in report["failures"]] == [2, 3]
    # The CSV form gives the same answers.
    csv_in = tmp_path / "in.csv"
    csv_in.write_text(
        "name,id_number\n" + "".join(f"{n},{i}\n" for n, i in items), encoding="utf-8"
    )
    out2 = tmp_path / "out2.jsonl"
    done = govgw(*conn, "verify", "batch", "--input", str(csv_in), "--purpose", PURPOSE,
                 "--out", str(out2))  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = [json.loads(x)["result"] for x in out2.read_text(encoding="utf-8").splitlines()]
    assert again == [x["result"] for x in lines[:6]]


def _tamper(receipt: dict[str, Any]) -> dict[str, Any]:
    """The receipt with one sibling hash of its Merkle proof changed."""
    path = list(receipt["batch"]["path"])
    path[0] = ("0" if path[0][0] != "0" else "1") + path[0][1:]
    return {**receipt, "batch": {**receipt["batch"], "path": path}}


@pytest.mark.requirement("R12")
def test_a_batch_whose_records_cannot_be_written_gets_no_result(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    keys, demo = make_data_dir(data_dir, persons=40, entities=10)
    audit = data_dir / "audit" / "audit.log"
    audit.parent.mkdir(parents=True, exist_ok=True)
    audit.unlink(missing_ok=True)
    os.symlink("/dev/full", audit)  # a real ENOSPC on every write
    h = start(data_dir, keys, demo)
    got: list[Any] = []
    try:
        with h.client("agency-civil") as gw:
            expect_error(
                lambda: got.extend(gw.verify_identity_batch(mixed_items(demo), purpose=PURPOSE)),
                grpc.StatusCode.UNAVAILABLE,
                "AUDIT_UNAVAILABLE",
            )
    finally:
        h.stop()
    assert got == []  # fail closed: not one answer left without its record
