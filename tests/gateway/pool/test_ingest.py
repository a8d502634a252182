"""Ingestion (归集) of JSONL and CSV: exact rejections, strict mode, atomicity, duplicates."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from gateway.pool import Pool, ingest_file
from gateway.pool.store import INSERT_CHUNK
from tests.gateway.pool import licence, new_pool, person, uscc_code

POP = "population.basic"
LIC = "licence.business"


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    p = new_pool(tmp_path)
    yield p
    p.close()


def people(n: int, start: int = 0) -> list[dict[str, str]]:
    return [person(f"测试{i}", born=date(1980, 1, 1 + i % 28), order=i) for i in range(start, n)]


def jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines)
        + "\n",
        encoding="utf-8",
    )
    return path


def csv_file(path: Path, rows: list[dict[str, str]], *, bom: bool = False) -> Path:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(("\ufeff" if bom else "") + out.getvalue(), encoding="utf-8")
    return path


def bad_rows() -> list[object]:
    """Lines 2-8 of the mixed file, each wrong in exactly one way."""
    good = people(3)
    check = good[0]["id_number"]
    return [
        good[0],
        {**good[1], "id_number": check[:-1] + ("1" if check[-1] != "1" else "2")},
        {**good[1], "birth_date": "1980-02-30"},
        {**good[1], "nickname": "小李"},
        {k: v for k, v in good[1].items() if k != "name"},
        {**good[1], "birth_date": "1980-01-03"},
        {**good[1], "gender": "未知"},
        '{"id_number": "51322119800101',
        good[2],
    ]


EXPECTED = [
    (2, "id_number", "ID_NUMBER_CHECK_DIGIT"),
    (3, "birth_date", "DATE_INVALID"),
    (4, "nickname", "FIELD_UNKNOWN"),
    (5, "name", "FIELD_MISSING"),
    (6, "birth_date", "BIRTH_DATE_MISMATCH"),
    (7, "gender", "ENUM_VALUE"),
    (8, "", "JSON_MALFORMED"),
]


def test_jsonl_with_good_and_bad_rows(tmp_path: Path, pool: Pool) -> None:
    lines = bad_rows()
    report = ingest_file(pool, POP, jsonl(tmp_path / "pop.jsonl", lines))
    assert [(r.line, r.field, r.reason) for r in report.rejected] == EXPECTED
    assert report.accepted == 2 and report.written and report.version == pool.dataset_version(POP)
    good = people(3)
    assert pool.read(POP, good[0]["id_number"]) == [good[0]]
    assert pool.read(POP, good[2]["id_number"]) == [good[2]]
    assert pool.read(POP, good[1]["id_number"]) == []
    assert pool.count(POP) == 2


def test_the_report_is_json_without_personal_data(tmp_path: Path, pool: Pool) -> None:
    report = ingest_file(pool, POP, jsonl(tmp_path / "pop.jsonl", bad_rows()))
    doc = report.to_json()
    text = json.dumps(doc, ensure_ascii=False)
    assert doc["dataset"] == POP and doc["accepted"] == 2 and doc["rejected_lines"] == 7
    assert doc["rejected"][0] == {
        "line": 2,
        "field": "id_number",
        "reason": "ID_NUMBER_CHECK_DIGIT",
        "description": "check digit does not match",
    }
    for row in people(3):
        assert row["id_number"][:14] not in text and row["name"] not in text


def test_csv_with_bom_crlf_and_the_same_rejections(tmp_path: Path, pool: Pool) -> None:
    good = people(3)
    rows = [
        good[0],
        {**good[1], "birth_date": "1980-02-30"},
        {**good[1], "gender": "男性"},
        good[2],
    ]
    report = ingest_file(pool, POP, csv_file(tmp_path / "pop.csv", rows, bom=True))
    assert [(r.line, r.field, r.reason) for r in report.rejected] == [
        (3, "birth_date", "DATE_INVALID"),
        (4, "gender", "ENUM_VALUE"),
    ]
    assert report.accepted == 2
    assert pool.read(POP, good[2]["id_number"]) == [good[2]]


def test_csv_line_numbers_follow_multi_line_values_and_extra_values(
    tmp_path: Path, pool: Pool
) -> None:
    code = uscc_code()
    record = {
        "uscc": code,
        "record_type": "行政处罚",
        "decision_no": "汶市监罚〔2024〕12号",
        "authority": "汶川县市场监督管理局",
        "decided_on": "2024-05-06",
        "content": "经查，当事人\n未按规定公示年度报告。",
        "status": "有效",
    }
    path = csv_file(tmp_path / "credit.csv", [record, {**record, "status": "作废"}])
    with path.open("a", encoding="utf-8") as f:
        f.write(",".join([code, "行政处罚", "x", "y", "2024-05-06", "z", "有效", "extra"]) + "\n")
    report = ingest_file(pool, "credit.record", path)
    assert [(r.line, r.field, r.reason) for r in report.rejected] == [
        (4, "status", "ENUM_VALUE"),
        (6, "", "CSV_EXTRA_VALUES"),
    ]
    assert pool.read("credit.record", code) == [record]


def test_a_gbk_csv_is_refused_with_a_hint(tmp_path: Path, pool: Pool) -> None:
    path = tmp_path / "pop.csv"
    path.write_bytes("id_number,name\n513221198001010011,测试\n".encode("gbk"))
    with pytest.raises(ValueError, match="iconv"):
        ingest_file(pool, POP, path)


def test_strict_mode_writes_nothing_when_a_row_is_rejected(tmp_path: Path, pool: Pool) -> None:
    before = pool.write_batch(POP, people(1))
    report = ingest_file(pool, POP, jsonl(tmp_path / "p.jsonl", bad_rows()), strict=True)
    assert report.accepted == 0 and not report.written and report.version == before
    assert len(report.rejected) == len(EXPECTED)
    assert pool.count(POP) == 1 and pool.read(POP, people(3)[2]["id_number"]) == []
    ok = ingest_file(pool, POP, jsonl(tmp_path / "ok.jsonl", people(3)), strict=True)
    assert ok.accepted == 3 and ok.written and ok.version != before


def test_duplicates_in_single_row_datasets_reject_every_line(tmp_path: Path, pool: Pool) -> None:
    one, two = people(2)
    other = {**one, "name": "别名"}
    report = ingest_file(pool, POP, jsonl(tmp_path / "p.jsonl", [one, two, other]))
    assert [(r.line, r.field, r.reason) for r in report.rejected] == [
        (1, "id_number", "DUPLICATE_SUBJECT"),
        (3, "id_number", "DUPLICATE_SUBJECT"),
    ]
    assert report.rejected[0].description == "the same subject is also on line 3"
    assert report.accepted == 1 and pool.read(POP, one["id_number"]) == []


def test_several_rows_per_subject_are_fine_where_the_dataset_allows(
    tmp_path: Path, pool: Pool
) -> None:
    code = uscc_code()
    rows = [licence(code, "JY1"), licence(code, "JY2")]
    report = ingest_file(pool, LIC, jsonl(tmp_path / "l.jsonl", rows))
    assert report.rejected == [] and report.accepted == 2
    assert pool.read(LIC, code) == rows


def test_replace_all_and_an_all_bad_file_never_wipes(tmp_path: Path, pool: Pool) -> None:
    ingest_file(pool, POP, jsonl(tmp_path / "a.jsonl", people(4)))
    bad = [{**p, "gender": "?"} for p in people(8, 4)]
    report = ingest_file(pool, POP, jsonl(tmp_path / "b.jsonl", bad), replace_all=True)
    assert report.accepted == 0 and not report.written and pool.count(POP) == 4
    report = ingest_file(pool, POP, jsonl(tmp_path / "c.jsonl", people(6, 4)), replace_all=True)
    assert report.accepted == 2 and pool.count(POP) == 2
    assert pool.read(POP, people(1)[0]["id_number"]) == []


def test_unknown_dataset_and_unknown_format(tmp_path: Path, pool: Pool) -> None:
    path = jsonl(tmp_path / "p.jsonl", people(1))
    with pytest.raises(ValueError, match=r"no\.such\.dataset"):
        ingest_file(pool, "no.such.dataset", path)
    with pytest.raises(ValueError, match="format"):
        ingest_file(pool, POP, path.rename(tmp_path / "p.txt"))
    assert ingest_file(pool, POP, tmp_path / "p.txt", fmt="jsonl").accepted == 1


def test_a_failure_mid_write_leaves_the_previous_state(pool: Pool) -> None:
    before = pool.write_batch(POP, people(3))
    fresh = people(INSERT_CHUNK + 10, 3)

    def rows_then_failure() -> Iterator[dict[str, str]]:
        yield from fresh[: INSERT_CHUNK + 5]  # a whole chunk is already inserted
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        pool.write_normalized(POP, rows_then_failure(), replace_all=True)
    assert pool.count(POP) == 3 and pool.dataset_version(POP) == before
    assert pool.read(POP, people(1)[0]["id_number"]) == people(1)
    assert pool.read(POP, fresh[0]["id_number"]) == []


def test_a_crashed_import_process_leaves_the_previous_state(tmp_path: Path) -> None:
    with new_pool(tmp_path) as pool:
        before = pool.write_batch(POP, people(3))
    # The child writes more than a chunk of a replace_all import, then dies
    # without unwinding: no rollback runs, only SQLite's own recovery.
    child = textwrap.dedent(
        f"""
        import os
        from datetime import date
        from pathlib import Path
        from gateway import keys
        from tests.gateway.pool import CATALOG, person
        from gateway.pool import Pool

        d = Path({str(tmp_path)!r})
        pool = Pool(d / "pool.db", keys.load(d / "keys" / "keyring.json"), CATALOG)

        def rows():
            for i in range({INSERT_CHUNK + 100}):
                yield person("新", born=date(1990, 1, 1 + i % 28), order=i % 1000)
            os._exit(3)

        pool.write_normalized("population.basic", rows(), replace_all=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", child], cwd=Path.cwd(), timeout=60)
    assert done.returncode == 3
    with new_pool(tmp_path) as pool:
        assert pool.count(POP) == 3 and pool.dataset_version(POP) == before
        assert pool.read(POP, people(1)[0]["id_number"]) == people(1)
