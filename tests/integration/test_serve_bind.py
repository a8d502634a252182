"""`govgw serve` where another server already is -- on its address, or on its data
directory: one line and exit 1, not a traceback (grpcio reports a failed bind as a
RuntimeError of its own; the audit file's lock as AuditUnavailable)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import Harness, make_data_dir


def test_serve_on_an_address_in_use_says_so_in_one_line(gateway: Harness, tmp_path: Path) -> None:
    make_data_dir(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "serve", "--data-dir", str(tmp_path / "data"),
         "--listen", gateway.target],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"govgw: cannot listen on {gateway.target}: the address is in use" in done.stderr


def test_serve_on_a_data_directory_in_use_says_so_in_one_line(
    gateway: Harness, seeded_dir: tuple[Path, dict[str, str], dict]
) -> None:
    data_dir = seeded_dir[0]
    assert gateway.data_dir == data_dir  # the session gateway serves it
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "serve", "--data-dir", str(data_dir),
         "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "is held by another process" in done.stderr
