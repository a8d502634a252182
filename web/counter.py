"""The counter page's parts, shared by the page handlers (web.pages) and built once
by the app (web.app): settings, the clerks' store, the gateway client, templates,
and the session helpers every page uses."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from web import forms
from web.gateway_client import GatewayClient
from web.store import KEYS_NAME, WebStore

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
