"""Nothing readable in the database: Faker-made persons imported through `govgw pool
import` into a PostgreSQL pool, then a `pg_dump` of the whole database holds none of
their ID numbers, names, phones or addresses in any written form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from faker import Faker

from gateway import catalog, keys
from gateway.pool import Pool
from gateway.storage import open_storage
from tests.pg_server import PostgresServer

POP = "population.basic"


def _persons(n: int) -> list[dict[str, str]]:
    fake = Faker("zh_CN")
    fake.seed_instance(20261204)
    out = []
    for _ in range(n):
        id_number = fake.ssn()
        out.append(
            {
                "id_number": id_number,
                "name": fake.name(),
                "gender": "男" if int(id_number[16]) % 2 else "女",
                "birth_date": f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}",
                "ethnicity": "汉族",
                "household_address": fake.address().split(" ")[0],
                "region_code": id_number[:6],
                "phone": fake.phone_number(),
            }
        )
    return list({p["id_number"]: p for p in out}.values())


def _forms(value: str) -> set[str]:
    """How a value could be written in a plain-format dump: as text, as bytea hex of its
    UTF-8 (or GB18030) bytes, JSON-escaped, and, for numbers, its digits alone."""
    forms = {value, value.encode().hex(), json.dumps(value)[1:-1].lower()}
    if not value.isascii():
        forms.add(value.encode("gb18030").hex())
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) >= 7:
        forms |= {digits, digits.encode().hex()}
    return forms


@pytest.mark.requirement("R12")
def test_a_pg_dump_of_the_pool_shows_no_personal_data(
    pg_server: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    persons = _persons(60)
    data_dir, src = tmp_path / "node", tmp_path / "persons.jsonl"
    src.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in persons), "utf-8")
    env = {**os.environ, "GOVGW_DATABASE_URL": pg_url}
    for argv in (
        ["init", "--data-dir", str(data_dir)],
        ["pool", "import", "--data-dir", str(data_dir), "--dataset", POP, str(src)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "clients.cli", *argv, "--json"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accepted"] == len(persons)

    dump = subprocess.run(
        [str(pg_server.bindir / "pg_dump"), "--dbname", pg_url],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    lowered = dump.lower()
    # The rows are there, sealed: each subject's blind index is in the dump (as bytea
    # hex, the form a plain value would take too), and the keys read them back.
    storage = open_storage(pg_url, data_dir)
    ring = keys.load(keys.keyring_path(data_dir))
    with Pool(data_dir / "pool.sqlite", ring, catalog.load(), storage) as pool:
        for p in persons[:5]:
            assert pool.blind_index(POP, p["id_number"]).hex() in lowered
            assert pool.read(POP, p["id_number"])[0]["name"] == p["name"]
    storage.close()
    found = [
        (i, field)
        for i, p in enumerate(persons)
        for field in ("id_number", "name", "phone", "household_address")
        if any(form.lower() in lowered for form in _forms(p[field]))
    ]
    assert found == [], f"readable in the dump (person, field): {found[:10]}"
