"""`govgw callers suspend|reinstate|list`: the registry, the shared state and the audit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway import admin
from gateway.audit import verify_chain
from tests.gateway.state.redis_server import RedisServer
from tests.support import free_port


def govgw(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "clients.cli", *args], capture_output=True, text=True, timeout=60
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"govgw {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    admin.init(tmp_path)
    admin.callers_add(tmp_path, "counter-a", "counter", "汶川县政务服务中心", "513221")
    admin.callers_add(tmp_path, "agency-b", "agency", "汶川县民政局", "513221")
    return tmp_path


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis-cli"))).start()
    yield server
    server.stop()


@pytest.mark.requirement("R10")
def test_suspend_list_reinstate_are_audited(data_dir: Path) -> None:
    d = str(data_dir)
    out = json.loads(govgw("callers", "suspend", "counter-a", "--reason", "滥用核验",
                           "--data-dir", d, "--json").stdout)  # fmt: skip
    assert out["id"] == "counter-a" and out["status"] == "suspended"
    listed = json.loads(govgw("callers", "list", "--suspended", "--data-dir", d, "--json").stdout)
    assert [c["id"] for c in listed] == ["counter-a"]
    human = govgw("callers", "list", "--data-dir", d).stdout
    assert "suspended" in human and "agency-b" in human
    govgw("callers", "reinstate", "counter-a", "--reason", "复核", "--data-dir", d)
    assert (
        json.loads(govgw("callers", "list", "--suspended", "--data-dir", d, "--json").stdout) == []
    )
    log = data_dir / "audit" / "audit-admin.log"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["action"], r["caller"], r["by"]) for r in records] == [
        ("caller.suspend", "counter-a", "administrator"),
        ("caller.reinstate", "counter-a", "administrator"),
    ]
    assert records[0]["detail"] == "滥用核验"
    assert verify_chain(log).ok
    report = json.loads(govgw("audit", "verify", "--data-dir", d, "--json").stdout)
    assert report["ok"] and report["records"] == 2


def test_unknown_caller_is_an_error(data_dir: Path) -> None:
    proc = govgw("callers", "suspend", "nobody", "--reason", "x", "--data-dir", str(data_dir),
                 check=False)  # fmt: skip
    assert proc.returncode == 1 and "no caller" in proc.stderr
    assert not (data_dir / "audit" / "audit-admin.log").exists()


def test_with_redis_the_shared_state_changes_too(data_dir: Path, redis_server) -> None:
    d, url = str(data_dir), redis_server.url
    govgw("callers", "suspend", "counter-a", "--reason", "r", "--data-dir", d, "--redis-url", url)
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        assert r.hget("govgw:suspended", "counter-a") == "ADMINISTRATOR"
        listed = json.loads(
            govgw("callers", "list", "--json", "--data-dir", d, "--redis-url", url).stdout
        )
        a = next(c for c in listed if c["id"] == "counter-a")
        assert a["status"] == "suspended" and a["suspension_reason"] == "ADMINISTRATOR"
        govgw("callers", "reinstate", "counter-a", "--reason", "r", "--data-dir", d,
              "--redis-url", url)  # fmt: skip
        assert r.hget("govgw:suspended", "counter-a") is None
    finally:
        r.close()


@pytest.mark.requirement("R10")
def test_reinstate_without_the_url_the_suspension_used_is_refused(
    data_dir: Path, redis_server, monkeypatch
) -> None:
    """A reinstatement that reached only the registry would report success while every
    gateway on the shared state still refuses the caller."""
    monkeypatch.delenv("GOVGW_REDIS_URL", raising=False)
    d, url = str(data_dir), redis_server.url
    govgw("callers", "suspend", "counter-a", "--reason", "r", "--data-dir", d, "--redis-url", url)
    proc = govgw("callers", "reinstate", "counter-a", "--reason", "r", "--data-dir", d,
                 check=False)  # fmt: skip
    assert proc.returncode == 1 and "--redis-url or GOVGW_REDIS_URL" in proc.stderr
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        assert r.hget("govgw:suspended", "counter-a") == "ADMINISTRATOR"
        listed = json.loads(govgw("callers", "list", "--json", "--data-dir", d).stdout)
        assert {c["id"]: c["status"] for c in listed}["counter-a"] == "suspended"
        govgw("callers", "reinstate", "counter-a", "--reason", "r", "--data-dir", d,
              "--redis-url", url)  # fmt: skip
        assert r.hget("govgw:suspended", "counter-a") is None
    finally:
        r.close()


def test_redis_down_changes_nothing(data_dir: Path) -> None:
    """Fail closed and whole: the registry is not changed when the shared state is not."""
    d = str(data_dir)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    proc = govgw("callers", "suspend", "counter-a", "--reason", "r", "--data-dir", d,
                 "--redis-url", dead, check=False)  # fmt: skip
    assert proc.returncode == 1 and "STATE_UNAVAILABLE" in proc.stderr
    listed = json.loads(govgw("callers", "list", "--json", "--data-dir", d).stdout)
    assert {c["id"]: c["status"] for c in listed} == {"counter-a": "active", "agency-b": "active"}


def test_workers_need_shared_state(data_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("GOVGW_REDIS_URL", raising=False)
    proc = govgw("serve", "--workers", "2", "--data-dir", str(data_dir),
                 "--listen", f"127.0.0.1:{free_port()}", check=False)  # fmt: skip
    assert proc.returncode == 1 and "--redis-url" in proc.stderr


def test_add_keeps_its_form_and_binds_provider_ids(data_dir: Path) -> None:
    d = str(data_dir)
    # The acceptance form, unchanged: no provider id, so no provider.
    plain = json.loads(govgw("callers", "add", "--data-dir", d, "--id", "agency-c", "--kind",
                             "agency", "--department", "某县民政局", "--region", "513221",
                             "--json").stdout)  # fmt: skip
    assert plain["caller"]["provider_ids"] == [] and plain["api_key"].startswith("gk_")
    bound = json.loads(govgw("callers", "add", "--data-dir", d, "--id", "agency-mz", "--kind",
                             "agency", "--department", "汶川县民政局", "--region", "513221",
                             "--provider-id", "county.civil-affairs", "--json").stdout)  # fmt: skip
    assert bound["caller"]["provider_ids"] == ["county.civil-affairs"]
    human = govgw("callers", "list", "--data-dir", d).stdout
    assert "county.civil-affairs" in human
    # A mistyped id, or a provider id on a counter, registers nothing.
    for args in (("--kind", "agency", "--provider-id", "county.civil-affair"),
                 ("--kind", "counter", "--provider-id", "county.civil-affairs")):  # fmt: skip
        proc = govgw("callers", "add", "--data-dir", d, "--id", "agency-typo", "--department",
                     "某局", "--region", "513221", *args, check=False)  # fmt: skip
        assert proc.returncode == 1 and "provider-id" in proc.stderr, proc.stderr
    listed = json.loads(govgw("callers", "list", "--json", "--data-dir", d).stdout)
    assert "agency-typo" not in {c["id"] for c in listed}
