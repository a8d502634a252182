"""`govgw audit reindex` and `govgw audit index-status` on a data directory's real chains."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clients.cli import main
from gateway.audit import AuditLog
from gateway.config import Layout

AT = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def chain(path: Path, n: int, start: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with AuditLog(path, clock=lambda: AT) as log:
        log.append_many(
            [
                {"request_id": f"r{i}", "caller": "civil", "action": "lookup", "outcome": "OK",
                 "dataset": "population.basic", "subject": "a" * 64}
                for i in range(start, start + n)
            ]
        )  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_reindex_and_pending(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = Layout(tmp_path)
    chain(layout.audit_dir / "audit-0.log", 3)
    chain(layout.audit_dir / "audit-1.log", 2)
    d = str(tmp_path)

    code, out, _ = run(capsys, "audit", "index-status", "--data-dir", d, "--json")
    doc = json.loads(out)
    assert (code, doc["exists"], doc["records"]) == (0, False, 0)
    assert not layout.audit_index.exists()  # looking does not build it

    code, out, _ = run(capsys, "audit", "reindex", "--data-dir", d, "--json")
    doc = json.loads(out)
    assert (code, doc["indexed_records"], doc["records"], doc["pending_bytes"]) == (0, 5, 5, 0)
    assert [(Path(f["path"]).name, f["records"], f["seq"]) for f in doc["files"]] == [
        ("audit-0.log", 3, 3),
        ("audit-1.log", 2, 2),
    ]
    assert doc["index"] == str(layout.audit_index) and doc["size_bytes"] > 0

    chain(layout.audit_dir / "audit-1.log", 4, start=2)  # appended since: pending
    code, out, _ = run(capsys, "audit", "index-status", "--data-dir", d)
    assert code == 0
    assert "audit index" in out and "5 records" in out
    line = next(x for x in out.splitlines() if x.startswith("audit-1.log"))
    assert line.split()[1:3] == ["2", "2"] and "ok" in line

    code, out, _ = run(capsys, "audit", "reindex", "--data-dir", d)
    assert code == 0 and out.startswith("indexed 9 records")


def test_a_broken_chain_is_shown_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Layout(tmp_path).audit_dir / "audit.log"
    chain(path, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"r1"', b'"rX"')
    path.write_bytes(b"".join(lines))
    code, out, _ = run(capsys, "audit", "reindex", "--data-dir", str(tmp_path), "--json")
    doc = json.loads(out)
    assert (code, doc["ok"], doc["records"]) == (1, False, 1)
    assert doc["files"][0]["broken"] == "seq 2: hash mismatch: the record was edited"
    code, out, _ = run(capsys, "audit", "index-status", "--data-dir", str(tmp_path))
    assert code == 1 and "BROKEN at seq 2" in out


def test_not_a_data_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for verb in ("reindex", "index-status"):
        code, out, err = run(capsys, "audit", verb, "--data-dir", str(tmp_path / "nope"), "--json")
        assert code == 1
        assert json.loads(out)["error"]["reason"] == "ValueError"
        assert "no audit/ directory" in err
    assert not (tmp_path / "nope").exists()
