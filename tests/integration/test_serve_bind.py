"""`govgw serve` on an address another server holds: one line and exit 1, not a
traceback (grpcio reports a failed bind as a RuntimeError of its own)."""

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
