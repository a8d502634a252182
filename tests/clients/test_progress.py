"""Progress of long commands: a bar on a terminal, plain lines otherwise, nothing for --json."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from clients.progress import Progress
from gateway import admin
from tests.gateway.pool.test_ingest import people
from tests.support import make_data_dir


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with Progress("pool import x", total=3000, stream=out, every_s=0.0) as p:
        for _ in range(3):
            p(1000)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("pool import x: 1,000 of 3,000 rows (33 %)")
    assert lines[-1].startswith("pool import x: 3,000 of 3,000 rows (100 %)")
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()  # no bar codes in a log


def test_a_bar_on_a_terminal_and_nothing_when_quiet() -> None:
    tty = Terminal()
    with Progress("audit verify", total=2048, unit="bytes", stream=tty) as p:
        p(2048)
    assert "audit verify" in tty.getvalue() and "100%" in tty.getvalue()
    quiet = Terminal()
    with Progress("audit verify", total=10, stream=quiet, quiet=True) as p:
        p(10)
    assert quiet.getvalue() == ""


def _govgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clients.cli", *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_commands_report_progress_on_stderr_and_none_under_json(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("GOVGW_REDIS_URL", raising=False)
    make_data_dir(tmp_path / "data", persons=5, entities=2)
    d = str(tmp_path / "data")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in people(900)),
                    encoding="utf-8")  # fmt: skip
    imported = _govgw("pool", "import", "--data-dir", d, "--dataset", "population.basic",
                      str(rows))  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert "pool import population.basic: 900 of 900 rows (100 %)" in imported.stderr
    quiet = _govgw("pool", "import", "--data-dir", d, "--dataset", "population.basic",
                   str(rows), "--replace", "--json")  # fmt: skip
    assert quiet.returncode == 0 and quiet.stderr == "" and json.loads(quiet.stdout)["accepted"]
    admin.callers_suspend(Path(d), "counter-songpan", "演练")  # an audit record to verify
    plain = _govgw("audit", "verify", "--data-dir", d)
    assert plain.returncode == 0 and "audit verify:" in plain.stderr and "bytes" in plain.stderr
    quiet = _govgw("audit", "verify", "--data-dir", d, "--json")
    assert quiet.returncode == 0 and quiet.stderr == "" and json.loads(quiet.stdout)["ok"]
    reindexed = _govgw("audit", "reindex", "--data-dir", d)
    assert reindexed.returncode == 0 and "audit reindex:" in reindexed.stderr
    rotated = _govgw("keys", "rotate", "--data-dir", d, "--json")
    assert rotated.returncode == 0 and rotated.stderr == "", rotated.stderr
    rotated = _govgw("keys", "rotate", "--data-dir", d)
    assert rotated.returncode == 0 and "keys rotate:" in rotated.stderr, rotated.stderr
