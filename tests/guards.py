"""Suite-wide checks, loaded by tests/conftest.py as a pytest plugin.

- `requirement(id)` marks a test that pins a requirement of DESIGN.md §3; the
  run ends with R1-R17 and the tests that cover each, an uncovered one shown
  as such.
- Any INTERNAL the gateway gives (its pipeline logs "unexpected <kind>") or
  any exception gRPC itself catches in a handler (UNKNOWN) fails the test in
  which it happened: a defect must never pass as a refusal.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator

import pytest

REQUIREMENTS = [f"R{i}" for i in range(1, 18)]
_covering: dict[str, list[str]] = defaultdict(list)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(id): pins a requirement of DESIGN.md §3")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Checked at collection (a typo fails the run at once); the coverage itself is
    # counted from the reports (below), which also reach the controller when the
    # suite runs in several processes (pytest-xdist collects in the workers only).
    for item in items:
        for mark in item.iter_markers("requirement"):
            for rid in mark.args:
                if rid not in REQUIREMENTS:
                    raise pytest.UsageError(f"{item.nodeid}: no requirement {rid} in DESIGN.md")
                item.user_properties.append(("requirement", rid))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":  # a test skipped at setup covers nothing
        return
    for name, rid in report.user_properties:
        if name == "requirement":
            _covering[rid].append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tr = terminalreporter
    tr.section("requirements of DESIGN.md §3 and the tests that pin them")
    for rid in REQUIREMENTS:
        tests = sorted(set(_covering.get(rid, [])))
        if not tests:
            tr.write_line(f"{rid:>4}  NOT COVERED")
            continue
        tr.write_line(f"{rid:>4}  {len(tests)} test(s)")
        for nodeid in tests:
            tr.write_line(f"        {nodeid}")


class _Defects(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "unexpected" in text.lower():
            self.lines.append(f"{record.name}: {text[:200]}")


@pytest.fixture(autouse=True)
def _no_internal_errors() -> Iterator[None]:
    handler = _Defects()
    watched = [logging.getLogger("govgw"), logging.getLogger("grpc")]
    for lg in watched:
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg in watched:
            lg.removeHandler(handler)
    if handler.lines:
        pytest.fail("the gateway hit a defect (INTERNAL/UNKNOWN):\n" + "\n".join(handler.lines))
