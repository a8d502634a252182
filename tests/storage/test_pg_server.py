"""The test PostgreSQL server itself: real, loopback only, a fresh database per test."""

from __future__ import annotations

import psycopg

from tests.pg_server import PostgresServer


def test_a_fresh_database_per_test_on_a_loopback_server(
    pg_server: PostgresServer, pg_url: str
) -> None:
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        listen = conn.execute("SHOW listen_addresses").fetchone()
    assert tables == (0,)
    assert listen == ("127.0.0.1",)
    assert pg_url != pg_server.url() and pg_url.startswith(pg_server.url("t_"))
