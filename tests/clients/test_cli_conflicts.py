"""`govgw conflicts report`: the parser and the CSV form (the calls are tested end to end
in tests/integration/test_conflicts.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from clients.cli import build_parser
from clients.cli_conflicts import CSV_COLUMNS, to_csv

CONFLICT = {
    "subject_hash": "ab" * 32,
    "subject_masked": "513221********1234",
    "subject_kind": "person",
    "attribute": "person.name",
    "values": [
        {"provider": "县公安局", "dataset": "population.basic", "field": "name",
         "masked_value": "泽*", "value_group": "A", "dataset_version": "v1",
         "imported_at": "2026-11-21T00:00:00Z"},
        {"provider": "县民政局", "dataset": "social_assistance.recipient", "field": "name",
         "masked_value": "泽*", "value_group": "B", "dataset_version": "v3",
         "imported_at": "2026-11-20T00:00:00Z"},
    ],
}  # fmt: skip


@pytest.mark.requirement("R16")
def test_csv_has_one_line_per_value_held() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv([CONFLICT, CONFLICT]))))
    assert len(rows) == 4
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["value_group"] for r in rows[:2]] == ["A", "B"]
    assert {r["subject_masked"] for r in rows} == {"513221********1234"}
    assert to_csv([]) == ",".join(CSV_COLUMNS) + "\n"


def test_parser_takes_attribute_format_and_data_dir() -> None:
    args = build_parser().parse_args(
        ["conflicts", "report", "--attribute", "person.address", "--csv", "--data-dir", "/d"]
    )
    assert (args.attribute, args.csv, args.data_dir) == ("person.address", True, Path("/d"))
    args = build_parser().parse_args(["conflicts", "report", "--json"])
    assert (args.attribute, args.csv, args.data_dir, args.json) == (None, False, None, True)
