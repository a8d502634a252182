"""A real gateway keeps answering, correctly, while `govgw keys rotate` runs beside it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from clients.sdk import GovgwClientError
from gateway import keys
from gateway.catalog import load as load_catalog
from gateway.config import Layout
from gateway.pool import Pool
from tests.support import make_data_dir, start

PURPOSE = "社会保障待遇资格认证"
POP = "population.basic"
CALLS_PER_THREAD_AFTER = 20


def test_rotation_under_load(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    api_keys, demo = make_data_dir(data_dir, persons=160, entities=20)
    ring_file = keys.keyring_path(data_dir)
    with Pool(Layout(data_dir).pool, keys.load(ring_file), load_catalog()) as pool:
        people = [(r["id_number"], r["name"]) for r in pool.iter_rows(POP)]
    gateway = start(data_dir, api_keys, demo)
    try:
        # The agency sees persons of its region: those are the expected answers.
        agency = gateway.client("agency-civil")
        expected = {}
        for key, name in people:
            try:
                rec = agency.lookup(POP, key, ["name"], purpose=PURPOSE).records[0]
            except GovgwClientError:
                continue
            assert rec["name"].value == name  # the agency's plan keeps names
            expected[key] = name
        assert len(expected) > 40, "the demo pool has persons in the agency's region"
        subjects = sorted(expected)

        rotation = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clients.cli",
                "keys",
                "rotate",
                "--data-dir",
                str(data_dir),
                "--batch",
                "8",
                "--pause-ms",
                "10",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        done = threading.Event()
        results: list[tuple[int, str]] = []  # (calls while rotating, first problem)

        def hammer(offset: int) -> None:
            client = gateway.client("agency-civil")
            calls, problem, i, after = 0, "", offset, 0
            # Bounded: stops when the rotation ends (plus a tail), or after 60 s.
            deadline = time.monotonic() + 60
            while after < CALLS_PER_THREAD_AFTER and time.monotonic() < deadline:
                rotating = not done.is_set()
                if not rotating:
                    after += 1
                key = subjects[i % len(subjects)]
                i += 7
                try:
                    got = (
                        client.lookup(POP, key, ["name"], purpose=PURPOSE).records[0]["name"].value
                    )
                    if got != expected[key] and not problem:
                        problem = "wrong record"
                except GovgwClientError as e:
                    problem = problem or f"{e.code.name} {e.reason}"
                calls += rotating
            results.append((calls, problem))

        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        out, err = rotation.communicate(timeout=120)
        done.set()
        for t in threads:
            t.join(timeout=90)
        assert rotation.returncode == 0, err
        assert all(problem == "" for _, problem in results), results
        during = sum(calls for calls, _ in results)
        assert during >= 30, f"only {during} calls overlapped the rotation"

        report = json.loads(out)
        assert report["old_versions"] == [1] and report["new_version"] == 2
        assert report["rows_moved_total"] >= len(people)
        ring = keys.load(ring_file)
        assert [k.version for k in ring.pool_keys] == [2]
        # Still serving, now from the new key only.
        assert gateway.parts.pool.active_key_version == 2
        for key in subjects[:5]:
            assert (
                agency.lookup(POP, key, ["name"], purpose=PURPOSE).records[0]["name"].value
                == expected[key]
            )
    finally:
        gateway.stop()
