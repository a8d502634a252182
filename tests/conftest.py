from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.state.redis_server import RedisServer
from tests.pg_server import PostgresServer
from tests.support import CapturedLogs, Harness, make_data_dir, start

# Requirement markers and their report at the end of the run; defects fail the test.
pytest_plugins = ["tests.guards"]

# A daemon thread a test started (a storage's change listener, a policy runtime's
# watcher) may log once more after pytest closed that test's capture stream; logging
# would print "--- Logging error ---" with a traceback into the run's output. The
# defects the suite looks for are caught by tests.guards, not by that printout.
logging.raiseExceptions = False


@pytest.fixture(autouse=True)
def _close_verb_storages() -> Iterator[None]:
    """Verbs run in-process open a database once per process (gateway.admin.storage);
    closed after each test, so that no change listener outlives its test's database."""
    yield
    from gateway import admin

    admin.close_storages()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session, started only when a test asks."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session, started only when a test asks; tests
    flush it first (a test that stops it starts it again)."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database of the session's server, dropped after the test."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict]:
    data_dir = tmp_path_factory.mktemp("govgw-data")
    keys, demo = make_data_dir(data_dir)
    return data_dir, keys, demo


@pytest.fixture(scope="session")
def gateway(seeded_dir) -> Iterator[Harness]:
    """One real gateway on a loopback port, shared by the integration tests."""
    data_dir, keys, demo = seeded_dir
    h = start(data_dir, keys, demo)
    yield h
    h.stop()


@pytest.fixture(scope="session")
def gateway_logs() -> Iterator[CapturedLogs]:
    handler = CapturedLogs()
    root = logging.getLogger("govgw")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
