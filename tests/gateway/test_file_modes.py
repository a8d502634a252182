"""Everything the gateway creates in a data directory is owner-only, whatever the umask.

A data directory is built the way the product builds one (init, seed, import,
callers, a suspension, a holiday schedule, TLS material, a key rotation), then
a real server is run and called so that every store writes: applications and
grants, corrections, withdrawals, emergencies, opening suspensions, policy
versions, the audit chains and the audit index (through a usage report and a
subject's usage listing). Every file under the directory must then be 0600 and
every directory 0700 — under the common 022 umask and under 000, which grants
everything the code does not itself withhold.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clients.sdk import PolicyAdminClient
from gateway import admin, files
from gateway.access.holidays import SUPPLEMENTS, install_file
from gateway.access.subject_tokens import load_private_key, mint
from gateway.app import attach, build_parts
from gateway.config import Layout, ServeConfig
from gateway.pool.rotate import rotate
from gateway.server import GatewayServer
from gateway.tls import ensure_server_material
from tests.gateway.access.test_holidays import SCHEDULE_2027
from tests.gateway.pool import person
from tests.support import Harness, make_data_dir, shifted_clock

POLICIES = Path(__file__).resolve().parents[2] / "policies"
TODAY = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # a Monday the holiday calendar covers
SHARE = "social_assistance.recipient"
ENTITIES = "legal_entity.basic"
EXTRA_CALLERS = (  # id, kind, department, the providers it is bound to
    ("agency-amr", "agency", "汶川县市场监督管理局", ("county.market-regulation",)),
    ("agency-rescue", "agency", "汶川县应急管理局", ()),
    ("agency-suspended", "agency", "汶川县文化旅游局", ()),
    ("root", "admin", "州大数据局", ()),
)


def loose_modes(root: Path) -> list[str]:
    """Every path under root (root included) that is not 0700 (dirs) or 0600 (files)."""
    found = []
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        want = files.DIR_MODE if stat.S_ISDIR(st.st_mode) else files.FILE_MODE
        if stat.S_IMODE(st.st_mode) != want:
            found.append(f"{oct(stat.S_IMODE(st.st_mode))} {path.relative_to(root.parent)}")
    return found


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def build_offline(data_dir: Path, tmp: Path) -> tuple[dict[str, str], dict]:
    """What an operator does with `govgw` before and beside serving."""
    keys, demo = make_data_dir(data_dir, persons=20, entities=6)
    for cid, kind, dept, providers in EXTRA_CALLERS:
        keys[cid] = admin.callers_add(data_dir, cid, kind, dept, "513221", provider_ids=providers)[
            "api_key"
        ]
    admin.callers_suspend(data_dir, "agency-suspended", "测试暂停", redis_url="")
    batch = tmp / "persons.jsonl"
    batch.write_text(json.dumps(person("李娜", order=23), ensure_ascii=False) + "\n")
    admin.pool_import(data_dir, "population.basic", batch, fmt=None, replace_all=False, strict=True)
    notice = tmp / "notice-2027.json"
    notice.write_text(json.dumps(SCHEDULE_2027, ensure_ascii=False), encoding="utf-8")
    install_file(notice, Layout(data_dir).calendar_dir)
    ensure_server_material(data_dir)
    layout = Layout(data_dir)
    rotate(
        layout.pool,
        data_dir / "keys" / "keyring.json",
        admin.data_dir_catalog(data_dir),
        grace_s=0,
    )
    return keys, demo


def serve(data_dir: Path, keys: dict[str, str], demo: dict) -> Harness:
    """As `govgw serve` builds it (limits, oracle, replay protection), on a fixed date."""
    cfg = ServeConfig(data_dir=data_dir, listen="127.0.0.1:0", grace_s=1, sweep_interval_s=0)
    parts = attach(build_parts(cfg), cfg)
    parts.clock = parts.audit.clock = shifted_clock(TODAY)
    server = GatewayServer(cfg, parts)
    server.start()
    return Harness(data_dir, cfg, parts, server, keys, demo)


def touch_every_store(h: Harness) -> None:
    def token(subject: str, **kw: str) -> str:
        pem = (h.data_dir / "keys" / "demo-subject-issuer.pem").read_bytes()
        return mint(
            load_private_key(pem), issuer=admin.DEMO_ISSUER, subject=subject,
            now=h.parts.clock(), **kw,
        )  # fmt: skip

    far, civil, amr = h.client("agency-far"), h.client("agency-civil"), h.client("agency-amr")
    recipient = h.demo["assistance_recipient"]["id_number"]
    # Applications and grants.
    app = far.apply(
        SHARE, ["name", "assistance_type"], purpose="最低生活保障资格复核",
        scenario="复核低保对象救助类型", duration_days=90,
    )  # fmt: skip
    civil.decide_application(app.id, approve=True, fields=["assistance_type"])
    far.lookup(SHARE, recipient, purpose="最低生活保障资格复核")
    # Corrections (and the disputed-fields index beside them).
    minor = h.demo["minor"]["id_number"]
    counter = h.client("counter-wenchuan")
    counter.file_correction(
        token(minor, azp="counter-wenchuan"), dataset="population.basic",
        field="household_address", statement="户籍地址应为汶川县威州镇岷江路12号",
    )  # fmt: skip
    # Withdrawals.
    entity = h.demo["active_entity"]["uscc"]
    public = h.client("public-portal")
    public.request_withdrawal(token(entity), dataset=ENTITIES, reason="公示信息已变更")
    # Emergencies.
    root = h.client("root")
    root.declare_emergency(
        title="汶川县地震应急响应", legal_basis="《中华人民共和国突发事件应对法》第四十五条",
        scope={SHARE: ["name", "assistance_type"]}, agencies=["agency-rescue"],
        purpose="地震受灾群众救助核查", ends_at=h.parts.clock() + timedelta(days=7),
    )  # fmt: skip
    # Opening suspensions.
    amr.suspend_opening(ENTITIES, reason="发现批量爬取法定代表人信息的安全风险")
    # The audit index: a provider's usage report and a subject's own listing refresh it.
    civil.usage_report(SHARE)
    public.all_my_usage(token(h.demo["adult_resident"]["id_number"]))
    # Policy versions: an activation stores the version, its manifest and history.
    policy = PolicyAdminClient(h.target, api_key=h.keys["root"], timeout_s=120)
    h.clients.append(policy)
    policy.activate_policy(candidate=POLICIES, reason="基线策略")


@pytest.mark.requirement("R12")
@pytest.mark.parametrize("umask", [0o022, 0o000], indirect=True, ids=["umask022", "umask000"])
def test_every_store_in_the_data_directory_is_owner_only(umask: int, tmp_path: Path) -> None:
    data_dir = tmp_path / "srv" / "govgw"  # the product makes the directory and its parents
    keys, demo = build_offline(data_dir, tmp_path)
    h = serve(data_dir, keys, demo)
    try:
        touch_every_store(h)
        # While serving, SQLite's -wal and -shm files exist beside the databases.
        serving = {p.name for p in data_dir.rglob("*")}
        assert {"pool.sqlite-wal", "pool.sqlite-shm"} <= serving
        loose = loose_modes(data_dir)
        assert not loose, "not owner-only while serving:\n" + "\n".join(loose)
    finally:
        h.stop()
        SUPPLEMENTS.use(None)
    # Offline verbs after serving: verification, rebuilding the derived index.
    assert admin.audit_verify(data_dir)["ok"]
    admin.audit_reindex(data_dir)
    names = {p.name for p in data_dir.rglob("*")}
    # The walk covers the stores it means to: a missing one would pass unnoticed.
    for expected in (
        "callers.sqlite", "applications.sqlite", "corrections.sqlite", "audit-index.sqlite",
        "pool.sqlite", "grants.json", "emergencies.json", "withdrawals.json",
        "opening_suspensions.json", "subject_issuers.json", "keyring.json", "audit.log",
        "audit-admin.log", "ca.key", "server.crt", "2027.json",
    ):  # fmt: skip
        assert expected in names, f"{expected} was not written; the test no longer covers it"
    loose = loose_modes(data_dir)
    assert not loose, "not owner-only:\n" + "\n".join(loose)


@pytest.mark.requirement("R12")
def test_an_existing_data_directory_is_tightened_when_opened(tmp_path: Path) -> None:
    """A data directory made by an older govgw (0644 files, 0755 dirs) is made
    owner-only by the next `govgw` verb or server start on it."""
    data_dir = tmp_path / "govgw"
    keys, demo = make_data_dir(data_dir, persons=5, entities=2)
    for path in [data_dir, *data_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    h = serve(data_dir, keys, demo)
    h.stop()
    loose = loose_modes(data_dir)
    assert not loose, "not owner-only:\n" + "\n".join(loose)


@pytest.mark.requirement("R12")
def test_the_govgw_command_writes_owner_only_under_any_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "govgw"

    def govgw(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "clients.cli", *args, "--data-dir", str(data_dir)],
            check=True, capture_output=True, timeout=120, umask=0,
        )  # fmt: skip

    govgw("init")
    govgw("callers", "add", "--id", "agency-civil", "--kind", "agency",
          "--department", "汶川县民政局", "--region", "513221")  # fmt: skip
    govgw("audit", "reindex")
    assert {"keyring.json", "callers.sqlite", "audit-index.sqlite"} <= {
        p.name for p in data_dir.rglob("*")
    }
    loose = loose_modes(data_dir)
    assert not loose, "not owner-only:\n" + "\n".join(loose)
