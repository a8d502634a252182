"""`govgw demo` (`make run`): a seeded demo pool, a caller per role, and how to use them.

The keys are printed in the banner, kept in `demo-credentials.json` and, for a
shell, in `demo.env` (both owner-only): the README's tour sources that file,
so its commands run as written.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from gateway.admin import init, pool_seed, serve
from gateway.callers import CallerRegistry
from gateway.config import Layout, ServeConfig

DEMO_CALLERS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    # id, kind, department, region, provider ids: the civil-affairs agency is bound
    # to its catalog provider id explicitly, never through its department's name.
    ("county-civil-affairs", "agency", "汶川县民政局", "513221", ("county.civil-affairs",)),
    ("wenchuan-counter-01", "counter", "汶川县政务服务中心", "513221", ()),
    ("public-portal", "public", "公众", "513200", ()),
    ("policy-admin", "admin", "州大数据局", "513200", ()),
)


def demo(config: ServeConfig, *, persons: int = 2000) -> int:
    """Seed a demo pool and callers once, print how to try it, then serve."""
    data_dir = Path(config.data_dir)
    init(data_dir)
    demo_file = data_dir / "demo.json"
    if not demo_file.exists():
        print(f"seeding a demo pool of {persons} persons into {data_dir} ...", flush=True)
        pool_seed(data_dir, persons=persons, entities=max(persons // 7, 50), seed=20261121)
    creds_file = data_dir / "demo-credentials.json"
    if not creds_file.exists():
        creds = {}
        registry = CallerRegistry(Layout(data_dir).callers)
        for cid, kind, dept, region, providers in DEMO_CALLERS:
            if registry.get(cid) is None:
                key = registry.add(cid, kind, dept, region, providers)[1]
                creds[cid] = {"kind": kind, "api_key": key}
        fd = os.open(creds_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(creds, f, indent=2)
    creds = json.loads(creds_file.read_text())
    subjects = json.loads(demo_file.read_text())
    write_demo_env(config, creds, subjects)
    return serve(config, banner=demo_banner(config, creds, subjects))


# The shell variables of the README's tour: one per role, and the demo citizen.
DEMO_ROLES: tuple[tuple[str, str, str], ...] = (
    # variable, demo caller, what the role is
    ("AGENCY_KEY", "county-civil-affairs", "an agency (汶川县民政局) reading records it may read"),
    ("PROVIDER_KEY", "county-civil-affairs", "the same agency as provider of county.civil-affairs"),
    ("COUNTER_KEY", "wenchuan-counter-01", "a service counter checking identities"),
    ("PUBLIC_KEY", "public-portal", "the public portal (citizens' own requests)"),
    ("ADMIN_KEY", "policy-admin", "an administrator (policies, conflicts, callers)"),
)


def write_demo_env(config: ServeConfig, creds: dict[str, Any], subjects: dict[str, Any]) -> Path:
    """`source .govgw/demo.env` in another terminal: the target, a key per role and a demo
    citizen as shell variables, so the README's commands run as written (owner-only file:
    it holds keys)."""
    adult = subjects.get("adult_resident") or {}
    values = {"GOVGW_TARGET": config.listen}
    values |= {var: creds[cid]["api_key"] for var, cid, _ in DEMO_ROLES if cid in creds}
    values |= {"DEMO_NAME": adult.get("name", ""), "DEMO_ID_NUMBER": adult.get("id_number", "")}
    path = Path(config.data_dir) / "demo.env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# written by `govgw demo`: synthetic data; source it in a shell\n")
        f.writelines(f"export {k}={shlex.quote(str(v))}\n" for k, v in values.items())
    return path


def demo_banner(config: ServeConfig, creds: dict[str, Any], subjects: dict[str, Any]) -> str:
    lines = [
        "",
        "Demo credentials (synthetic data; keys also in "
        + str(Path(config.data_dir) / "demo-credentials.json")
        + "):",
    ]
    for cid, c in creds.items():
        lines.append(f"  {cid:24} {c['kind']:8} {c['api_key']}")
    env = Path(config.data_dir) / "demo.env"
    lines += ["", f"Every role as a shell variable (source {env} in another terminal):"]
    lines += [f"  ${var:13} {what}" for var, _, what in DEMO_ROLES]
    lines += [f"  $DEMO_NAME, $DEMO_ID_NUMBER  a demo citizen; $GOVGW_TARGET  {config.listen}"]
    lines += ["  become a role:  export GOVGW_API_KEY=$COUNTER_KEY   (or pass --api-key)"]
    adult = subjects.get("adult_resident") or {}
    counter = creds.get("wenchuan-counter-01", {}).get("api_key", "KEY")
    if adult:
        lines += [
            "",
            "Try it (from another terminal):",
            f"  .venv/bin/govgw --target {config.listen} --api-key {counter} verify identity \\",
            f"      --name {adult.get('name')} --id-number {adult.get('id_number')} --purpose 户籍业务办理",
        ]
    portal = creds.get("public-portal", {}).get("api_key")
    if adult and portal:
        lines += [
            "",
            "As that citizen (a token from the demo identity provider): who used my data?",
            f"  export GOVGW_SUBJECT_TOKEN=$(.venv/bin/govgw subjects token --data-dir"
            f" {config.data_dir} --subject {adult.get('id_number')})",
            f"  .venv/bin/govgw --target {config.listen} --api-key {portal} subjects usage",
        ]
    coordinator = creds.get("policy-admin", {}).get("api_key")
    if coordinator and subjects.get("planted_conflicts"):
        lines += [
            "",
            "Values two providers hold differently (R16; the demo plants three):",
            f"  .venv/bin/govgw --target {config.listen} --api-key {coordinator} conflicts report",
        ]
    lines.append("")
    return "\n".join(lines)
