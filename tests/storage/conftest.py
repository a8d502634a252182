"""What the storage tests share: stores opened on either backend, as several nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.storage import Storage, open_storage

Nodes = Callable[[], Storage]


@pytest.fixture(params=["sqlite", "postgresql"])
def storages(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Nodes]:
    """Open storages on one backend: each call is another node (or process) opening it."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    opened: list[Storage] = []

    def open_one() -> Storage:
        opened.append(open_storage(url, tmp_path))
        return opened[-1]

    yield open_one
    for storage in opened:
        storage.close()
