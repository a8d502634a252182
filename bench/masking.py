"""Masking benchmark: free-text and structured desensitization, next to presidio's own engines.

    python -m bench.masking [--samples N] [--records N] [--out FILE]

Measures, on one core, in one run:
  - text:       govgw's pii_text (presidio AnalyzerEngine with the Chinese
                recognizers, then per-entity operators) over the evaluation
                corpus texts: characters per second;
  - presidio:   presidio's stock AnalyzerEngine (predefined recognizers, no-op
                NLP engine, as shipped: no Chinese ones) + AnonymizerEngine
                (default replace) on the same texts: characters per second,
                and what it finds of the labelled entities it has types for;
  - structured: the catalog's share and open treatments of population.basic
                applied field by field to synthetic records: microseconds per
                record;
  - pool rows:  sealing and opening a pool row with each cipher suite.
Absolute numbers drift on shared machines; compare figures from one run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from masking.text import offline

offline.ensure_offline()

# presidio entity types that correspond to ours (for its recall on our corpus).
PRESIDIO_TYPES = {
    "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "CREDIT_CARD": "BANK_CARD",
    "PERSON": "PERSON",
    "LOCATION": "ADDRESS",
}


def _best_of(runs: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def bench_text(texts: list[str]) -> dict[str, Any]:
    from masking import MaskingContext
    from masking.text.operator import desensitize

    started = time.perf_counter()  # presidio and spaCy imports, then the engine
    from masking.text.analyzer import text_analyzer

    text_analyzer()
    build = time.perf_counter() - started
    ctx = MaskingContext("bench", os.urandom(32), datetime.date.today())
    params = _catalog_text_params()
    chars = sum(map(len, texts))
    seconds = _best_of(3, lambda: [desensitize(t, params, ctx) for t in texts])
    return {
        "texts": len(texts),
        "characters": chars,
        "seconds": round(seconds, 3),
        "chars_per_s": round(chars / seconds),
        "us_per_text": round(seconds / len(texts) * 1e6, 1),
        "analyzer_build_s": round(build, 2),
    }


def _catalog_text_params() -> dict[str, Any]:
    from gateway.catalog import load

    return load().get("credit.record").field("content").share.params


def presidio_engines() -> tuple[Any, Any]:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "noop"}])
    nlp.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    # Needs a spaCy model, which is not downloaded here.
    registry.remove_recognizer("SpacyRecognizer")
    return AnalyzerEngine(registry=registry, nlp_engine=nlp), AnonymizerEngine()


def bench_presidio(samples: list[Any]) -> dict[str, Any]:
    analyzer, anonymizer = presidio_engines()
    texts = [s.text for s in samples]
    chars = sum(map(len, texts))

    def run() -> list[Any]:
        out = []
        for t in texts:
            found = analyzer.analyze(text=t, language="en")
            out.append((found, anonymizer.anonymize(text=t, analyzer_results=found)))
        return out

    seconds = _best_of(2, run)
    results = run()
    labelled: dict[str, int] = {}
    hit: dict[str, int] = {}
    for s, (found, _) in zip(samples, results, strict=True):
        for g in s.spans:
            labelled[g.type] = labelled.get(g.type, 0) + 1
            if any(
                PRESIDIO_TYPES.get(r.entity_type) == g.type
                and r.start <= g.start
                and r.end >= g.end
                for r in found
            ):
                hit[g.type] = hit.get(g.type, 0) + 1
    return {
        "characters": chars,
        "seconds": round(seconds, 3),
        "chars_per_s": round(chars / seconds),
        "recall_on_our_corpus": {
            t: round(hit.get(t, 0) / n, 3) for t, n in sorted(labelled.items())
        },
    }


def bench_ours_recall(samples: list[Any]) -> dict[str, float]:
    from masking.text.analyzer import text_analyzer
    from masking.text.evaluation import score

    scores = score(samples, text_analyzer().analyze)
    return {t: round(s.recall, 3) for t, s in sorted(scores.by_type.items())}


def bench_structured(records: int) -> dict[str, Any]:
    from gateway.catalog import load
    from masking import MaskingContext, apply_treatment
    from masking.text.corpus_gen import Generator

    ds = load().get("population.basic")
    gen = Generator(11)
    rows = [
        {
            "id_number": gen.id_number(),
            "name": gen.person(),
            "gender": "男",
            "birth_date": "1986-04-12",
            "ethnicity": "羌族",
            "household_address": "四川省阿坝藏族羌族自治州汶川县威州镇羌锋村2组8号",
            "region_code": "513221",
            "phone": "13800001234",
        }
        for _ in range(records)
    ]
    ctx = MaskingContext("bench", os.urandom(32), datetime.date.today())
    out: dict[str, Any] = {"fields": len(ds.fields), "records": records}
    for release in ("share", "open"):
        plan = [(f.name, getattr(f, release)) for f in ds.fields]
        seconds = _best_of(
            3,
            lambda plan=plan: [
                {n: apply_treatment(t, r.get(n), ctx) for n, t in plan} for r in rows
            ],
        )
        out[f"{release}_us_per_record"] = round(seconds / records * 1e6, 2)
    return out


def bench_pool_rows(rows: int = 5000) -> dict[str, Any]:
    from gateway.crypto import get_suite, suite_names
    from gateway.keys import PoolKey
    from gateway.pool.store import _Codec, _Version

    row = {
        "id_number": "513221198001011230",
        "name": "张三",
        "household_address": "四川省阿坝藏族羌族自治州汶川县威州镇羌锋村2组8号",
        "phone": "13800001234",
    }
    out = {}
    codec = _Codec("population.basic")
    for name in suite_names():
        suite = get_suite(name)
        key = PoolKey(1, name, os.urandom(suite.data_key_bytes), os.urandom(32), "active")
        version = _Version(1, suite, suite.aead(key.data_key), key.index_key)

        keys = SimpleNamespace(versions={1: version})

        def cycle(version: _Version = version, keys: Any = keys) -> None:
            for _ in range(rows):
                bidx = codec.blind_index(version, row["id_number"])
                kv, nonce, ct = codec.seal(version, bidx, row)
                codec.open(keys, bidx, kv, nonce, ct)

        seconds = _best_of(3, cycle)
        out[name] = {"us_per_row_index_seal_open": round(seconds / rows * 1e6, 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.masking")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from masking.text.corpus_forms import corpus

    samples = corpus(args.samples, seed=20261122)
    texts = [s.text for s in samples]
    result = {
        "text": bench_text(texts),
        "presidio_stock": bench_presidio(samples),
        "ours_recall_on_corpus": bench_ours_recall(samples),
        "structured": bench_structured(args.records),
        "pool_rows": bench_pool_rows(),
    }
    t, p, s = result["text"], result["presidio_stock"], result["structured"]
    print(
        f"free text, govgw pii_text:        {t['chars_per_s']:>9,} chars/s  ({t['us_per_text']} µs per text of ~{t['characters'] // t['texts']} chars; analyzer built in {t['analyzer_build_s']} s)"
    )
    print(
        f"free text, presidio stock engines: {p['chars_per_s']:>9,} chars/s  (AnalyzerEngine + AnonymizerEngine, same texts)"
    )
    print("recall on the labelled corpus      ours / presidio stock")
    for typ, ours in result["ours_recall_on_corpus"].items():
        print(f"  {typ:<15} {ours:>6.3f} / {p['recall_on_our_corpus'].get(typ, 0.0):.3f}")
    print(
        f"structured population.basic ({s['fields']} fields): share {s['share_us_per_record']} µs/record, open {s['open_us_per_record']} µs/record"
    )
    for name, r in result["pool_rows"].items():
        print(f"pool row {name}: {r['us_per_row_index_seal_open']} µs (blind index + seal + open)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
