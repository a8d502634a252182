"""The deployment units of deploy/systemd: hardened as the README says, and every
command they run is a real govgw verb whose flags the command accepts. With
systemd-analyze on the machine, `systemd-analyze verify` passes on them too."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clients.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
HARDENING = {
    "User": "govgw",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "UMask": "0077",
}
# What ${VAR} in a unit stands for in the examples of deploy/two-nodes.
EXAMPLE_ENV = {"GOVGW_LISTEN": "0.0.0.0:50051"}


def _unit(path: Path) -> configparser.ConfigParser:
    # systemd allows repeated keys (ExecStartPre=…); strict=False keeps the last.
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser


def _commands(path: Path) -> list[list[str]]:
    """The govgw argv of every Exec line, as systemd would expand it for instance `a`."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key not in ("ExecStart", "ExecStartPre"):
            continue
        value = value.replace("%i", "a").replace("$$", "$").replace("%%", "%")
        value = re.sub(r"\$\(date[^)]*\)", "20270101T000000Z", value)
        argv = shlex.split(value)
        if argv[:2] == ["/bin/sh", "-c"]:  # a shell line: its command
            argv = [a for a in shlex.split(argv[2]) if a != "exec"]
        argv = [re.sub(r"\$\{(\w+)\}", lambda m: EXAMPLE_ENV[m.group(1)], a) for a in argv]
        if argv[0].endswith("/govgw"):
            found.append(argv[1:])
    return found


@pytest.mark.requirement("R12")
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_units_are_hardened_and_run_real_govgw_verbs(unit: Path) -> None:
    service = _unit(unit)["Service"]
    for key, want in HARDENING.items():
        assert service.get(key) == want, f"{unit.name}: {key}={service.get(key)!r}"
    assert service.get("EnvironmentFile") == "/etc/govgw/%i.env"
    writable = service["ReadWritePaths"].split()
    assert "/var/lib/govgw/%i" in writable  # the data directory, and nothing of /etc or /opt
    assert not any(p.startswith(("/etc", "/opt", "/usr")) for p in writable)
    commands = _commands(unit)
    assert commands, f"{unit.name} runs no govgw verb"
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)  # exits (SystemExit) on an unknown verb or flag
        assert args.data_dir == Path("/var/lib/govgw/a")
        helped = subprocess.run(
            [sys.executable, "-m", "clients.cli", argv[0], "--help"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert helped.returncode == 0 and "--data-dir" in helped.stdout, helped.stderr


def test_the_node_unit_restarts_and_the_examples_keep_redis_durable() -> None:
    node = _unit(DEPLOY / "systemd" / "govgw-node@.service")
    assert node["Service"]["Restart"] == "on-failure"
    assert node["Install"]["WantedBy"] == "multi-user.target"
    redis = (DEPLOY / "two-nodes" / "redis.conf").read_text(encoding="utf-8").splitlines()
    assert "appendonly yes" in redis and "maxmemory-policy noeviction" in redis
    for env in sorted((DEPLOY / "two-nodes").glob("*.env")):
        names = {
            ln.split("=", 1)[0]
            for ln in env.read_text().splitlines()
            if "=" in ln and not ln.startswith("#")
        }
        assert {"GOVGW_DATABASE_URL", "GOVGW_REDIS_URL", "GOVGW_KEYRING_FILE"} <= names, env.name


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    """Where systemd-analyze exists (it does on the test machine: installed with systemd)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install -y systemd"
    govgw = Path(sys.executable).with_name("govgw")
    assert govgw.exists(), f"no govgw entry point beside {sys.executable}: make install"
    (tmp_path / "a.env").write_text("GOVGW_LISTEN=127.0.0.1:50051\n")
    names = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        text = unit.read_text(encoding="utf-8")
        text = text.replace("/opt/govgw/.venv/bin/govgw", str(govgw))
        text = text.replace("/etc/govgw/%i.env", str(tmp_path / "%i.env"))
        name = unit.name.replace("@.", "@a.")
        (tmp_path / name).write_text(text)
        names.append(f"./{name}")
    done = subprocess.run(
        [analyze, "verify", *names], capture_output=True, text=True, timeout=120,
        cwd=tmp_path, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )  # fmt: skip
    ours = [ln for ln in (done.stdout + done.stderr).splitlines() if "govgw" in ln]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr
