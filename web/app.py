"""The counter page as an ASGI app (Starlette + Jinja2 templates, served by uvicorn).

Sessions are signed cookies (Starlette's SessionMiddleware, itsdangerous) holding
the clerk's username, a CSRF token and the time of the last request: nothing
personal. Every form carries the CSRF token; a POST without it is 403.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web import pages
from web.counter import Counter, WebSettings
from web.store import session_secret

log = logging.getLogger("govgw.web")
HERE = Path(__file__).resolve().parent


class SecurityHeaders:
    """No framing, no third-party anything, no caching of pages that show answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [
                    (
                        b"content-security-policy",
                        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
                    ),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class QuietErrors:
    """A defect answers 500 with a plain message and logs one line, its type and path:
    no traceback (an exception's text may quote what a clerk typed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as e:
            log.error("page failed: %s on %s", type(e).__name__, scope.get("path", ""))
            if started or scope["type"] != "http":
                return
            body = "500 系统内部错误，请稍后重试；如持续出现请联系系统管理员。".encode()
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})


def _lifespan(counter: Counter) -> Callable[[Starlette], Any]:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        counter.close()

    return lifespan


def create_app(settings: WebSettings) -> Starlette:
    counter = Counter(settings)
    app = Starlette(
        routes=[
            *pages.routes(counter),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(QuietErrors),
            Middleware(
                SessionMiddleware,
                secret_key=session_secret(settings.data_dir).decode(),
                session_cookie="govgw_counter",
                max_age=12 * 3600,  # a working day at most; idle expiry is checked per request
                same_site="strict",
                https_only=settings.tls,
            ),
        ],
        lifespan=_lifespan(counter),
        max_body_size=256 * 1024,  # a pasted receipt is ~2 KiB; nothing legitimate is larger
    )
    app.state.counter = counter
    return app
