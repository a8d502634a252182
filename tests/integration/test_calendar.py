"""A year's holiday schedule entered while the gateway serves: deadlines into it work at once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from gateway.access.holidays import SUPPLEMENTS
from tests.gateway.access.test_holidays import SCHEDULE_2027
from tests.support import Harness, expect_error, make_data_dir, shifted_clock, start

DS = "social_assistance.recipient"
# Monday 28 December 2026: a 7-working-day deadline reaches into 2027.
LATE_DECEMBER = datetime(2026, 12, 28, 2, 0, tzinfo=UTC)


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Harness]:
    keys, demo = make_data_dir(tmp_path, persons=5, entities=2)
    h = start(tmp_path, keys, demo, clock=shifted_clock(LATE_DECEMBER), sweep_interval_s=0)
    yield h
    h.stop()
    SUPPLEMENTS.use(None)


def govgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_schedule_added_by_the_operator_serves_the_next_application(
    gw: Harness, tmp_path: Path
) -> None:
    def apply():
        with gw.client("agency-far") as c:
            return c.apply(
                DS, ["name"], purpose="最低生活保障资格复核", scenario="复核", duration_days=30
            )

    expect_error(apply, grpc.StatusCode.FAILED_PRECONDITION, "CALENDAR_NOT_COVERED")
    notice = tmp_path / "notice-2027.json"
    notice.write_text(json.dumps(SCHEDULE_2027, ensure_ascii=False), encoding="utf-8")
    added = govgw("calendar", "add", str(notice), "--data-dir", str(gw.data_dir), "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["year"] == 2027
    app = apply()  # no restart: the running gateway reads the new file
    assert (app.status, app.working_days, app.due_date) == ("pending", 7, "2027-01-07")
    status = json.loads(
        govgw("calendar", "status", "--data-dir", str(gw.data_dir), "--json").stdout
    )
    assert status["package"]["years"] == [2004, 2026]
    assert [(s["file"], s["ok"]) for s in status["supplements"]] == [("2027.json", True)]


def test_a_refused_schedule_says_where_and_installs_nothing(tmp_path: Path) -> None:
    bad = {**SCHEDULE_2027, "workdays": ["2027-02-08"], "source": ""}
    notice = tmp_path / "bad.json"
    notice.write_text(json.dumps(bad, ensure_ascii=False), encoding="utf-8")
    checked = govgw("calendar", "check", str(notice), "--json")
    assert checked.returncode == 1
    problems = json.loads(checked.stdout)["error"]["problems"]
    assert {p["path"] for p in problems} == {"$.source", "$.workdays[0]"}
    assert "$.workdays[0]" in checked.stderr
    added = govgw("calendar", "add", str(notice), "--data-dir", str(tmp_path / "d"))
    assert added.returncode == 1 and not (tmp_path / "d" / "calendar" / "2027.json").exists()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(SCHEDULE_2027, ensure_ascii=False), encoding="utf-8")
    human = govgw("calendar", "check", str(good))
    assert human.returncode == 0 and human.stdout.startswith("ok: 2027: 32 days off")
