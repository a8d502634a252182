"""The README's five-minute tour, run as written against a fresh demo.

The tour's ```sh blocks are taken from README.md verbatim and run by bash in a
directory laid out as the repository is for a new user (`.venv/` beside the
demo's `.govgw/`), after `govgw demo` has started there: what a newcomer types
is what this test types.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)


def tour_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## A five-minute tour")
    section = text[start : text.index("\n## ", start + 1)]
    return _BLOCK.findall(section)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("newcomer")
    (home / ".venv").symlink_to(Path(sys.prefix))
    listen = f"127.0.0.1:{free_port()}"
    log = (home / "demo.log").open("w")
    proc = subprocess.Popen(
        [str(home / ".venv/bin/govgw"), "demo", "--data-dir", ".govgw", "--listen", listen,
         "--persons", "300"],
        cwd=home, stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while "govgw serving on" not in (home / "demo.log").read_text(encoding="utf-8"):
        assert proc.poll() is None and time.monotonic() < deadline, "the demo did not start"
        time.sleep(0.2)
    yield home
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def run_block(home: Path, block: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVGW_")}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=home, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


def test_the_tour_has_its_blocks() -> None:
    blocks = tour_blocks()
    assert len(blocks) == 2 and all(".venv/bin/govgw" in b for b in blocks)
    assert all("source .govgw/demo.env" in b for b in blocks)


def test_the_counter_clerks_tour_runs_as_written(demo_dir: Path) -> None:
    out = run_block(demo_dir, tour_blocks()[0])
    assert "MATCH" in out
    lookup, _ = json.JSONDecoder().raw_decode(out[out.index("\n{") + 1 :])
    assert lookup["found"] and lookup["records"] and lookup["request_id"]
    # The receipt the identity check kept verifies offline with the published keys.
    assert (demo_dir / "receipt.json").exists() and (demo_dir / "keys.json").exists()
    env_file = (demo_dir / ".govgw" / "demo.env").read_text(encoding="utf-8")
    assert oct((demo_dir / ".govgw" / "demo.env").stat().st_mode & 0o777) == "0o600"
    demo_id = re.search(r"DEMO_ID_NUMBER=(\d{17}[\dX])", env_file)
    assert demo_id and demo_id.group(1) not in out  # the lookup masks the subject


def test_the_citizen_provider_and_administrator_tour_runs_as_written(demo_dir: Path) -> None:
    run_block(demo_dir, tour_blocks()[0])
    out = run_block(demo_dir, tour_blocks()[1])
    # The citizen sees the counter's checks of the first block; the provider gets its
    # report; the administrator the planted conflicts; the chain verifies.
    assert "wenchuan-counter-01" in out and "verify.identity" in out, out
    assert "social_assistance.recipient:" in out and "3 conflict(s)" in out, out
    assert "audit chain OK" in out, out
