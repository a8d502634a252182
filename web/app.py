"""The counter page as an ASGI app (Starlette + Jinja2 templates, served by uvicorn).

Sessions are signed cookies (Starlette's SessionMiddleware, itsdangerous) holding
the clerk's username, a CSRF token and the time of the last request: nothing
personal. Every form carries the CSRF token; a POST without it is 403.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web import forms, pages
from web.gateway_client import GatewayClient
from web.store import KEYS_NAME, WebStore, session_secret

log = logging.getLogger("govgw.web")
HERE = Path(__file__).resolve().parent


@dataclass
class WebSettings:
    data_dir: Path
    gateway: str
    api_key: str
    idle_s: float = 15 * 60
    lockout_failures: int = 5
    lockout_window_s: float = 15 * 60
    tls: bool = False
    purposes_file: Path = forms.DEFAULT_PURPOSES
    clock: Callable[[], float] = field(default=time.time)


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


class Counter:
    """The app's parts, shared by the page handlers (web.pages)."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.store = WebStore(settings.data_dir)
        self.gateway = GatewayClient(
            settings.gateway, settings.api_key, settings.data_dir / KEYS_NAME
        )
        self.purposes = forms.counter_purposes(settings.purposes_file)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))

    def close(self) -> None:
        self.gateway.close()
        self.store.close()

    # -- sessions ------------------------------------------------------------------
    def csrf(self, request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return str(token)

    async def form(self, request: Request) -> dict[str, str] | None:
        """The posted form, or None when its CSRF token is missing or wrong."""
        data = await request.form()
        values = {k: v for k, v in data.items() if isinstance(v, str)}
        sent, want = values.pop("csrf_token", ""), request.session.get("csrf", "")
        if not want or not secrets.compare_digest(str(sent), str(want)):
            return None
        return values

    def clerk(self, request: Request) -> str | None:
        """The signed-in clerk, or None (never signed in, or idle too long)."""
        user, seen = request.session.get("user"), request.session.get("seen", 0)
        now = self.settings.clock()
        if not user:
            return None
        if now - float(seen) > self.settings.idle_s:
            request.session.clear()
            request.session["expired"] = True
            return None
        request.session["seen"] = now
        return str(user)

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.update(
            csrf_token=self.csrf(request),
            clerk=request.session.get("user") if not request.session.get("must_change") else None,
        )
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def signed_in(self, request: Request) -> str | Response:
        """The clerk, or the redirect to sign in (or to set a password first)."""
        user = self.clerk(request)
        if user is None:
            return RedirectResponse("/login", status_code=303)
        if request.session.get("must_change"):
            return RedirectResponse("/password", status_code=303)
        return user

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(fn, *args)


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
