"""The conflicts report (R16): values providers hold differently, graded for the coordinator.

normalize.py  the forms values are compared in (strict: a conflict; lenient: format only)
divisions.py  renamed counties (the gazetteer's, and a table of code changes)
compare.py    how two values differ without revealing them (verdict, distance, positions)
paging.py     the walk's order, cursor and page token
report.py     ConflictFinder: the walk, the masked entries
"""

from gateway.pool.conflicts.compare import (
    DIFFERENT,
    FORMAT_ONLY,
    SMALL_DIFFERENCE,
    VERDICTS,
    Difference,
    compare,
)
from gateway.pool.conflicts.normalize import (
    equal_after,
    lenient,
    normalize,
    normalize_address,
    normalize_date,
    normalize_name,
)
from gateway.pool.conflicts.report import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    OFFLINE_SCAN_BUDGET,
    SCAN_BUDGET,
    Conflict,
    ConflictFinder,
    HeldValue,
    Page,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DIFFERENT",
    "FORMAT_ONLY",
    "MAX_PAGE_SIZE",
    "OFFLINE_SCAN_BUDGET",
    "SCAN_BUDGET",
    "SMALL_DIFFERENCE",
    "VERDICTS",
    "Conflict",
    "ConflictFinder",
    "Difference",
    "HeldValue",
    "Page",
    "compare",
    "equal_after",
    "lenient",
    "normalize",
    "normalize_address",
    "normalize_date",
    "normalize_name",
]
