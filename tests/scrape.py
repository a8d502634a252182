"""Reading a gateway's /metrics over HTTP, as Prometheus does, and its JSON log lines."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass
class Scrape:
    text: str
    samples: list[Sample]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def labels(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode("utf-8")
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return Scrape(text, samples)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log written with --log-format json; each must parse."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        doc = json.loads(line)  # raises, naming the line, if one is not JSON
        assert isinstance(doc, dict), f"line {n} is not a JSON object"
        out.append(doc)
    return out


def assert_call_lines(lines: Iterable[dict[str, Any]], request_ids: Iterable[str]) -> None:
    """The pipeline's line for each of these calls is there, with its fields."""
    by_id = {d["request_id"]: d for d in lines if "request_id" in d}
    for rid in request_ids:
        assert rid in by_id, f"no log line for {rid}"
        d = by_id[rid]
        for key in ("timestamp", "level", "logger", "message", "caller", "action", "code"):
            assert isinstance(d.get(key), str) and d[key], (key, d)
        assert isinstance(d["latency_ms"], int | float) and d["latency_ms"] >= 0, d
        assert d["logger"] == "govgw.pipeline" and rid in d["message"], d
