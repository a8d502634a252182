"""docs/receipts.md's worked examples are real: they verify, open and prove as written."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from contract.receipts import (
    SignedReceipt,
    open_commitment,
    public_keys_from_keyset,
    verify_receipt,
)

pytestmark = pytest.mark.requirement("R12")
DOC = Path(__file__).resolve().parents[2] / "docs" / "receipts.md"


def example(name: str) -> dict:
    text = DOC.read_text()
    match = re.search(rf"<!-- example: {name} -->\n```json\n(.+?)\n```", text, re.DOTALL)
    assert match, f"docs/receipts.md has no example {name}"
    return json.loads(match.group(1))


def test_the_worked_examples_verify_and_open() -> None:
    keys = public_keys_from_keyset(example("jwks"))
    single = SignedReceipt.from_json(example("receipt"))
    assert verify_receipt(single, keys)["outcome"] == "MATCH"
    assert open_commitment(single, "11010519491231002X", example("receipt")["commitment_salt"])
    batch = SignedReceipt.from_json(example("batch"))
    assert verify_receipt(batch, keys)["outcome"] == "NO_MATCH"
    # The intermediate hashes the step-by-step check shows.
    leaf = hashlib.sha256(b"\x00" + batch.payload).hexdigest()
    assert leaf in DOC.read_text()
    assert batch.batch is not None
    node = hashlib.sha256(b"\x01" + batch.batch.path[0] + bytes.fromhex(leaf)).hexdigest()
    assert node in DOC.read_text()
