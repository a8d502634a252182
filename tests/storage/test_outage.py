"""A database outage while serving: a call that needs the database fails closed
(UNAVAILABLE, reason DATABASE_UNAVAILABLE, no URL in the message, no traceback in the
log), what memory answers goes on, and once the database is back on the same port the
same call succeeds without restarting the gateway."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from clients.sdk import GovgwClientError
from tests.pg_server import PostgresServer
from tests.support import CapturedLogs, expect_error, make_data_dir, start

T = TypeVar("T")
SHARE = "social_assistance.recipient"
PURPOSE = "最低生活保障资格复核"


class StoppablePostgres(PostgresServer):
    """A server of this test's own, stopped and started again on the same port and data."""

    def halt(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockdir} -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "log"),
            "-o", options, "-w", "-t", "30", "start",
        )  # fmt: skip


def _once_back(call: Callable[[], T]) -> T:
    """`call` retried while it is refused as DATABASE_UNAVAILABLE (and only so)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return call()
        except GovgwClientError as e:
            assert (e.code, e.reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE"), e
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def own_server() -> Iterator[StoppablePostgres]:
    server = StoppablePostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_outage_fails_calls_closed_and_the_gateway_recovers_by_itself(
    own_server: StoppablePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = own_server.create_database("outage")
    monkeypatch.setenv("GOVGW_DATABASE_URL", url)
    monkeypatch.delenv("GOVGW_KEYRING_FILE", raising=False)
    keys, demo = make_data_dir(tmp_path / "node", persons=5, entities=2)
    logs = CapturedLogs()
    logging.getLogger().addHandler(logs)
    h = start(tmp_path / "node", keys, demo, database_url=url)
    try:
        far, civil = h.client("agency-far"), h.client("agency-civil")
        first = far.apply(SHARE, ["assistance_type"], purpose=PURPOSE,
                          scenario="复核低保对象救助类型", duration_days=30)  # fmt: skip
        own_server.halt()
        # A grant is written to the database: refused, retryable, nothing decided.
        err = expect_error(
            lambda: civil.decide_application(first.id, approve=True),
            grpc.StatusCode.UNAVAILABLE,
            "DATABASE_UNAVAILABLE",
        )
        assert "postgresql://" not in str(err) and str(own_server.port) not in str(err)
        # Authentication and cached decisions go on from memory.
        assert far.list_datasets()
        own_server.resume()  # the same port: the gateway is not restarted

        # As a client honouring RetryInfo does: the pool reconnects on its own backoff
        # (while it does, the call is refused the same way, never INTERNAL).
        decided = _once_back(lambda: civil.decide_application(first.id, approve=True))
        assert decided.grant.id  # approved now, its grant written
        assert far.lookup(SHARE, demo["assistance_recipient"]["id_number"], purpose=PURPOSE)
    finally:
        h.stop()
        logging.getLogger().removeHandler(logs)
    assert "database unavailable; failing closed" in logs.text
    assert "Traceback" not in logs.text and "INTERNAL" not in logs.text
