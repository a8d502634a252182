"""The evaluation corpus parses as labelled, and a small run meets the issue's targets."""

from __future__ import annotations

from masking.text.analyzer import text_analyzer
from masking.text.evaluation import corpus, hard_cases, parse_marked, report, score


def test_marked_lines_parse_into_spans() -> None:
    s = parse_marked("当事人[[PERSON:张三]]电话[[PHONE_NUMBER:13800001234]]。", "t")
    assert s.text == "当事人张三电话13800001234。"
    assert [(x.type, s.text[x.start : x.end]) for x in s.spans] == [
        ("PERSON", "张三"),
        ("PHONE_NUMBER", "13800001234"),
    ]


def test_hard_cases_include_negatives_and_positives() -> None:
    cases = hard_cases()
    assert len(cases) >= 35
    assert sum(1 for c in cases if not c.spans) >= 15


def test_targets_met_on_a_fresh_seed() -> None:
    samples = corpus(400, seed=7)
    scores, errors = score(samples, text_analyzer().analyze)
    table, ok = report(scores)
    assert ok, table + "\n" + "\n".join(errors[:20])
