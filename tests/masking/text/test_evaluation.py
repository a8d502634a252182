"""The evaluation corpus parses as labelled, every form is generated, and a small run meets
the targets form by form."""

from __future__ import annotations

import pytest

from masking.text.analyzer import text_analyzer
from masking.text.corpus_forms import FORMS, FormGenerator, corpus
from masking.text.corpus_gen import KEEP, Sample, Span, hard_cases, parse_marked
from masking.text.evaluation import report, score


def test_marked_lines_parse_into_spans_with_forms() -> None:
    s = parse_marked("当事人[[PERSON:张三]]电话[[PHONE_NUMBER@phone.hyphen:138-0000-1234]]。", "t")
    assert s.text == "当事人张三电话138-0000-1234。"
    assert [(x.type, s.text[x.start : x.end], x.form) for x in s.spans] == [
        ("PERSON", "张三", "person"),
        ("PHONE_NUMBER", "138-0000-1234", "phone.hyphen"),
    ]
    harmless = parse_marked("订单号[[KEEP:2023112012345678]]已发货", "t", "harmless.order_number")
    assert [(x.harmless, x.form) for x in harmless.spans] == [(True, "harmless.order_number")]
    whole = parse_marked("请拨打12345热线", "t", "harmless.look_alike")
    assert whole.spans == (Span(KEEP, 0, len(whole.text), "harmless.look_alike"),)


def test_hard_cases_cover_every_form_with_positives_and_negatives() -> None:
    cases = hard_cases()
    forms = {g.form for c in cases for g in c.spans}
    missing = {f for f in FORMS if f not in forms}
    assert not missing, missing
    assert sum(1 for c in cases if all(g.harmless for g in c.spans)) >= 25
    assert "\n" in "".join(c.text for c in cases if c.form.endswith("line_break"))


@pytest.mark.parametrize("name", sorted(FORMS))
def test_every_form_makes_a_labelled_sample(name: str) -> None:
    s = FormGenerator(3).form_sample(name)
    assert s.form == name
    (span,) = [g for g in s.spans if g.form == name]
    assert span.type == FORMS[name].entity


def test_a_form_the_detector_misses_fails_the_run() -> None:
    samples = [Sample("身份证号码5132211986\n04120890", (Span("ID_NUMBER", 5, 24, "id.x"),), "t")]
    table, ok = report(score(samples, lambda text: []))
    assert not ok and "id.x" in table and "MISSED" in table
    kept = [Sample("订单号2023", (Span(KEEP, 0, 7, "harmless.y"),), "t")]
    table, ok = report(score(kept, text_analyzer().analyze))
    assert ok and "harmless.y" in table


def test_targets_met_on_a_fresh_seed() -> None:
    samples = corpus(300, seed=7, per_form=50)
    scores = score(samples, text_analyzer().analyze)
    table, ok = report(scores)
    assert ok, table + "\n" + "\n".join(scores.errors[:20])


def test_samples_made_without_forms_are_scored_under_their_type_s_plain_form() -> None:
    # Generators written before forms existed: Sample(text, spans, source), fill() pairs.
    text, kind = FormGenerator(5).fill("ORDER")
    assert kind is None and text.isdigit()
    s = Sample("当事人张三到场", (Span("PERSON", 3, 5),), "older")
    scores = score([s], text_analyzer().analyze)
    assert scores.by_form["person"].tp == 1
    named = Sample("请联系张三", (Span("PERSON", 3, 5),), "person.contact_verb")
    assert set(score([named], lambda text: []).by_form) == {"person.contact_verb"}
