from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.state import StateBackend, open_state
from tests.gateway.state.redis_server import RedisServer

Body = Callable[[StateBackend], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
def run(request: pytest.FixtureRequest) -> Callable[[Body], None]:
    """Run an async test body against a fresh backend of each kind."""
    kind = request.param
    server: RedisServer | None = (
        request.getfixturevalue("redis_server") if kind == "redis" else None
    )

    def runner(body: Body) -> None:
        async def main() -> None:
            if server is not None:
                server.flush()
            state = open_state(server.url if server else "")
            try:
                await body(state)
            finally:
                await state.aclose()

        asyncio.run(main())

    return runner
