"""verify_chain names the first broken record, whatever was done to the file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import AuditLog, verify_chain
from gateway.audit.log import GENESIS, canonical_json

N = 30


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The lines of a sound chain of N records, written by the real log."""
    path = tmp_path_factory.mktemp("chain") / "audit.jsonl"
    with AuditLog(path) as a:
        a.append_many(
            [
                {
                    "request_id": f"req-{i:04d}",
                    "caller": "agency-civil",
                    "action": "VerifyAge",
                    "dataset": "population",
                    "decision": "allow" if i % 3 else "deny",
                    "outcome": "OK" if i % 3 else "PERMISSION_DENIED",
                    "subject": hashlib.sha256(str(i).encode()).hexdigest(),
                    "input": {"predicates": ["age_at_least"]},
                }
                for i in range(N)
            ]
        )
    return path.read_bytes().splitlines(keepends=True)


def check(tmp_path: Path, lines: list[bytes]):
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"".join(lines))
    return verify_chain(path)


def rehash(line: bytes, **changes: object) -> bytes:
    """What a forger with no key does: edit a record and fix its own hash."""
    rec = json.loads(line)
    rec.pop("hash")
    rec.update(changes)
    rec["hash"] = hashlib.sha256(canonical_json(rec).encode()).hexdigest()
    return canonical_json(rec).encode() + b"\n"


def test_sound_chain_verifies(tmp_path: Path, chain: list[bytes]) -> None:
    r = check(tmp_path, chain)
    assert (r.ok, r.records, r.first_broken_seq, r.first_broken_line, r.torn_tail) == (
        True,
        N,
        None,
        None,
        False,
    )
    assert r.head_seq == N and r.head_hash == json.loads(chain[-1])["hash"]
    assert "OK" in r.describe()


def test_empty_file_verifies(tmp_path: Path) -> None:
    r = check(tmp_path, [])
    assert r.ok and r.records == 0 and r.head_hash == GENESIS


@pytest.mark.parametrize("k", [1, 2, 17, N])
def test_edited_byte_names_the_record(tmp_path: Path, chain: list[bytes], k: int) -> None:
    lines = list(chain)
    lines[k - 1] = lines[k - 1].replace(b'"caller":"agency-civil"', b'"caller":"agency-civiL"')
    r = check(tmp_path, lines)
    assert not r.ok
    assert (r.first_broken_seq, r.first_broken_line) == (k, k)
    assert "hash mismatch" in r.problem
    assert r.records == k - 1
    assert f"record {k}" in r.describe()


@pytest.mark.parametrize("k", [1, 2, 17, N - 1])
def test_deleted_record_is_named(tmp_path: Path, chain: list[bytes], k: int) -> None:
    lines = chain[: k - 1] + chain[k:]
    r = check(tmp_path, lines)
    assert not r.ok
    assert (r.first_broken_seq, r.first_broken_line) == (k, k)
    assert "missing" in r.problem


@pytest.mark.parametrize("k", [1, 5, N - 1])
def test_swapped_records_are_named(tmp_path: Path, chain: list[bytes], k: int) -> None:
    lines = list(chain)
    lines[k - 1], lines[k] = lines[k], lines[k - 1]
    r = check(tmp_path, lines)
    assert not r.ok
    assert (r.first_broken_seq, r.first_broken_line) == (k, k)
    assert "seq" in r.problem


def test_inserted_copy_is_named(tmp_path: Path, chain: list[bytes]) -> None:
    lines = [*chain[:10], chain[4], *chain[10:]]
    r = check(tmp_path, lines)
    assert (r.ok, r.first_broken_seq, r.first_broken_line) == (False, 11, 11)
    assert "reordered or inserted" in r.problem


def test_rehashed_edit_breaks_the_next_link(tmp_path: Path, chain: list[bytes]) -> None:
    lines = list(chain)
    lines[9] = rehash(lines[9], decision="allow", outcome="OK")
    r = check(tmp_path, lines)
    assert (r.ok, r.first_broken_seq, r.first_broken_line) == (False, 11, 11)
    assert "prev mismatch" in r.problem


def test_deleted_record_with_renumbered_seq_breaks_the_link(
    tmp_path: Path, chain: list[bytes]
) -> None:
    lines = [*chain[:4], rehash(chain[5], seq=5), *chain[6:]]
    r = check(tmp_path, lines)
    assert (r.ok, r.first_broken_seq) == (False, 5)
    assert "prev mismatch" in r.problem


def test_first_record_must_start_from_genesis(tmp_path: Path, chain: list[bytes]) -> None:
    r = check(tmp_path, [rehash(chain[0], prev="f" * 64)])
    assert (r.ok, r.first_broken_seq, r.first_broken_line) == (False, 1, 1)
    assert "prev mismatch" in r.problem


def test_torn_final_line_is_reported_not_fatal(tmp_path: Path, chain: list[bytes]) -> None:
    r = check(tmp_path, [*chain, chain[0][:40]])
    assert (r.ok, r.records, r.torn_tail) == (True, N, True)
    assert "torn" in r.describe()


@pytest.mark.parametrize(
    ("junk", "problem"),
    [
        (b"not json\n", "not valid JSON"),
        (b"[1,2]\n", "not a JSON object"),
        (b'{"seq":3}\n', "no hash"),
        (b"\n", "not valid JSON"),
        (b'{"seq":3,"x":NaN,"hash":"00"}\n', "hash mismatch"),
    ],
)
def test_unreadable_middle_line_is_named(
    tmp_path: Path, chain: list[bytes], junk: bytes, problem: str
) -> None:
    r = check(tmp_path, [*chain[:2], junk, *chain[3:]])
    assert (r.ok, r.first_broken_seq, r.first_broken_line) == (False, 3, 3)
    assert problem in r.problem


def test_cut_tail_shows_only_against_an_anchored_head(tmp_path: Path, chain: list[bytes]) -> None:
    # A bare chain cannot show records cut off the end; the head hash can.
    anchored = check(tmp_path, chain).head_hash
    r = check(tmp_path, chain[:-3])
    assert r.ok and r.records == N - 3
    assert r.head_hash != anchored


@pytest.mark.requirement("R12")
@settings(max_examples=80, deadline=None)
@given(
    k=st.integers(1, N),
    kind=st.sampled_from(["edit", "delete", "swap"]),
    offset=st.integers(0, 10_000),
    byte=st.integers(0, 255).filter(lambda b: b != ord("\n")),
)
def test_any_tampering_names_the_tampered_record(
    tmp_path_factory: pytest.TempPathFactory,
    chain: list[bytes],
    k: int,
    kind: str,
    offset: int,
    byte: int,
) -> None:
    lines = list(chain)
    if kind == "edit":
        line = lines[k - 1]
        i = offset % (len(line) - 1)  # any byte but the newline
        if line[i] == byte:
            byte = (byte + 1) % 256 or 1
            if byte == ord("\n"):
                byte += 1
        lines[k - 1] = line[:i] + bytes([byte]) + line[i + 1 :]
    elif kind == "delete":
        if k == N:
            k = N - 1  # a cut tail is the anchor's job, see above
        del lines[k - 1]
    else:
        k = min(k, N - 1)
        lines[k - 1], lines[k] = lines[k], lines[k - 1]
    r = check(tmp_path_factory.mktemp("t"), lines)
    assert not r.ok
    assert r.first_broken_seq == k and r.first_broken_line == k
