"""The access stores across two `govgw serve` nodes on one PostgreSQL database (separate
data directories, one keyring): a withdrawal filed through node A is honoured by node B
within 1 s, an emergency declared on A applies on B, an application approved on A
grants on B, and a calendar year added through the CLI is the database's, for both.

One setup for the module (two real nodes are slow to start); the pool stays in each
data directory (seeded alike, one keyring), the stores under test are the database's."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from stdnum.cn import uscc

from clients.sdk import GovgwClient, GovgwClientError
from gateway.access.holidays import FESTIVALS, package_covers
from gateway.access.subject_tokens import load_private_key, mint
from gateway.admin import DEMO_ISSUER
from gateway.callers import CallerRegistry
from gateway.storage import open_storage
from tests.pg_server import PostgresServer
from tests.storage.test_two_nodes import _by, _env, _serve, govgw

ENTITY_DS = "legal_entity.basic"
SOCIAL = "social_assistance.recipient"
EMERGENCY_PURPOSE = "地震受灾群众救助核查"
SHARE_PURPOSE = "最低生活保障资格复核"
CALLERS = (
    ("public-portal", "public", "公众", ()),
    ("agency-civil", "agency", "汶川县民政局", ("county.civil-affairs",)),
    ("agency-amr", "agency", "汶川县市场监督管理局", ("county.market-regulation",)),
    ("agency-far", "agency", "松潘县公安局", ()),
    ("agency-rescue", "agency", "汶川县应急管理局", ()),
    ("root", "admin", "州大数据局", ()),
)
# Made-up festival dates in the shape of a notice (not any year's real schedule): the
# test installs them only for a year the packaged calendar does not cover.
_BREAKS = {
    "元旦": ("01-01", "01-03"), "春节": ("02-10", "02-16"), "清明节": ("04-04", "04-06"),
    "劳动节": ("05-01", "05-05"), "端午节": ("06-10", "06-12"), "中秋节": ("09-20", "09-22"),
    "国庆节": ("10-01", "10-07"),
}  # fmt: skip


@dataclass
class Nodes:
    env: dict[str, str]
    dirs: tuple[Path, Path]
    ports: tuple[int, int]
    keys: dict[str, str]
    demo: dict[str, Any]
    years: list[int]  # calendar years installed through the CLI

    def client(self, node: int, caller: str) -> GovgwClient:
        return GovgwClient(f"127.0.0.1:{self.ports[node]}", api_key=self.keys[caller])


def _schedule(year: int) -> dict[str, Any]:
    return {
        "year": year,
        "source": "测试用安排（非真实通知）",
        "holidays": [
            {"name": n, "from": f"{year}-{_BREAKS[n][0]}", "to": f"{year}-{_BREAKS[n][1]}"}
            for n in FESTIVALS
        ],
        "workdays": [],
    }


@pytest.fixture(scope="module")
def nodes(pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    root = tmp_path_factory.mktemp("access-nodes")
    url = pg_server.create_database()
    dirs = (root / "a", root / "b")
    env = _env(url, dirs[0] / "keys" / "keyring.json")
    procs = []
    try:
        for d in dirs:
            govgw(env, "init", "--data-dir", str(d))
        # The pool is the database's: seeded once, through node A's directory. The
        # callers are the database's too (test_two_nodes adds them through the CLI).
        govgw(env, "pool", "seed", "--data-dir", str(dirs[0]), "--persons", "30",
              "--entities", "10", "--seed", "7")  # fmt: skip
        storage = open_storage(url, dirs[0])
        try:
            registry = CallerRegistry(storage)
            keys = {
                cid: registry.add(cid, kind, dept, "513221", list(providers))[1]
                for cid, kind, dept, providers in CALLERS
            }
        finally:
            storage.close()
        # Deadlines need the holiday schedule of every year they reach: this year's and
        # next year's, entered through node A's directory where the package lacks them.
        today = datetime.now(UTC).date()
        years = [y for y in (today.year, today.year + 1) if not package_covers(y)]
        for year in years:
            notice = root / f"notice-{year}.json"
            notice.write_text(json.dumps(_schedule(year), ensure_ascii=False), encoding="utf-8")
            govgw(env, "calendar", "add", str(notice), "--data-dir", str(dirs[0]))
        ports = []
        for d in dirs:
            proc, port = _serve(env, d, root / f"{d.name}.log")
            procs.append(proc)
            ports.append(port)
        demo = json.loads((dirs[0] / "demo.json").read_text(encoding="utf-8"))
        yield Nodes(env, dirs, (ports[0], ports[1]), keys, demo, years)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        pg_server.drop_database(url)


def _token(n: Nodes, subject: str) -> str:
    """A subject token of node A's demo identity provider (registered in the database)."""
    key = load_private_key((n.dirs[0] / "keys" / "demo-subject-issuer.pem").read_bytes())
    return mint(key, issuer=DEMO_ISSUER, subject=subject)


def _answer(c: GovgwClient, dataset: str, key: str, purpose: str) -> tuple:
    """What a lookup answers, without what differs per call (the request id)."""
    try:
        c.lookup(dataset, key, purpose=purpose)
    except GovgwClientError as e:
        meta = {k: v for k, v in e.metadata.items() if k != "request_id"}
        return (e.code, e.reason, str(e).replace(e.request_id, ""), meta, [*e.violations])
    return ("FOUND",)


@pytest.mark.requirement("R9")
def test_a_withdrawal_through_node_a_is_honoured_by_node_b_within_1s(nodes: Nodes) -> None:
    ent = nodes.demo["active_entity"]["uscc"]
    absent_key = "91513221MA62X0000" + uscc.calc_check_digit("91513221MA62X0000")
    with nodes.client(0, "public-portal") as on_a, nodes.client(1, "public-portal") as on_b:
        absent = _answer(on_b, ENTITY_DS, absent_key, "核实交易对象")
        assert absent[:2] == (grpc.StatusCode.NOT_FOUND, "SUBJECT_NOT_FOUND")
        assert _answer(on_b, ENTITY_DS, ent, "核实交易对象") == ("FOUND",)
        on_a.request_withdrawal(_token(nodes, ent), dataset=ENTITY_DS, reason="侵犯本企业权益")
        deadline = time.monotonic() + 1.0
        # On B, the public gets for this subject exactly what it gets for an absent one.
        assert _by(lambda: _answer(on_b, ENTITY_DS, ent, "核实交易对象") == absent, deadline)
        (mine,) = on_b.my_withdrawals(_token(nodes, ent))  # B lists what A recorded
        assert mine.dataset == ENTITY_DS


@pytest.mark.requirement("R11")
def test_an_emergency_declared_on_node_a_applies_on_node_b(nodes: Nodes) -> None:
    subject = nodes.demo["assistance_recipient"]["id_number"]
    with nodes.client(0, "root") as root_a, nodes.client(1, "agency-rescue") as rescue_b:
        before = _answer(rescue_b, SOCIAL, subject, EMERGENCY_PURPOSE)
        assert before[:2] == (grpc.StatusCode.PERMISSION_DENIED, "GRANT_REQUIRED")
        em = root_a.declare_emergency(
            title="汶川县地震应急响应", legal_basis="《突发事件应对法》第四十五条",
            scope={SOCIAL: ["name", "assistance_type"]}, agencies=["agency-rescue"],
            purpose=EMERGENCY_PURPOSE, ends_at=datetime.now(UTC) + timedelta(days=7),
        )  # fmt: skip
        deadline = time.monotonic() + 1.0
        assert _by(lambda: _answer(rescue_b, SOCIAL, subject, EMERGENCY_PURPOSE) == ("FOUND",),
                   deadline)  # fmt: skip
        with nodes.client(1, "root") as root_b:
            root_b.end_emergency(em.id, reason="应急响应终止")
        with nodes.client(0, "agency-rescue") as rescue_a:
            deadline = time.monotonic() + 1.0
            assert _by(
                lambda: (
                    _answer(rescue_a, SOCIAL, subject, EMERGENCY_PURPOSE)[0]
                    == grpc.StatusCode.PERMISSION_DENIED
                ),
                deadline,
            )


@pytest.mark.requirement("R3")
def test_an_application_filed_on_b_approved_on_a_grants_on_b(nodes: Nodes) -> None:
    subject = nodes.demo["assistance_recipient"]["id_number"]
    with nodes.client(1, "agency-far") as far_b, nodes.client(0, "agency-civil") as civil_a:
        assert _answer(far_b, SOCIAL, subject, SHARE_PURPOSE)[1] == "GRANT_REQUIRED"
        app = far_b.apply(
            SOCIAL, ["name", "assistance_type"], purpose=SHARE_PURPOSE,
            scenario="复核低保对象救助类型", duration_days=90,
        )  # fmt: skip
        (pending,) = civil_a.list_applications(status="pending")  # A sees B's application
        assert pending.id == app.id
        civil_a.decide_application(app.id, approve=True, fields=["assistance_type"])
        deadline = time.monotonic() + 1.0
        assert _by(lambda: _answer(far_b, SOCIAL, subject, SHARE_PURPOSE) == ("FOUND",), deadline)
        assert far_b.get_application(app.id).status == "approved"


def test_a_calendar_year_added_through_the_cli_is_the_databases(nodes: Nodes) -> None:
    """Added through node A's directory: node B's directory lists it and refuses to add
    it again, so both nodes count deadlines into it (the two servers load it from the
    database at start and on every announced change: test_access_stores)."""
    year = nodes.years[0] if nodes.years else date.today().year + 5
    if not nodes.years:  # the package covers this year and the next: add a later one now
        notice = nodes.dirs[0].parent / f"notice-{year}.json"
        notice.write_text(json.dumps(_schedule(year), ensure_ascii=False), encoding="utf-8")
        govgw(nodes.env, "calendar", "add", str(notice), "--data-dir", str(nodes.dirs[0]))
    status = govgw(nodes.env, "calendar", "status", "--data-dir", str(nodes.dirs[1]))
    assert {(s["file"], s["ok"]) for s in status["supplements"]} >= {(f"{year}.json", True)}
    again = subprocess.run(
        [sys.executable, "-m", "clients.cli", "calendar", "add",
         str(nodes.dirs[0].parent / f"notice-{year}.json"), "--data-dir", str(nodes.dirs[1]),
         "--json"],
        capture_output=True, text=True, timeout=60, env=nodes.env,
    )  # fmt: skip
    assert again.returncode != 0 and "--replace" in again.stdout + again.stderr
    assert not (nodes.dirs[1] / "calendar" / f"{year}.json").exists()  # the database's only
