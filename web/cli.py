"""`govgw web ...`: the service counter's page.

    govgw web --data-dir WEB --gateway HOST:PORT --api-key-file FILE --listen HOST:PORT
              [--idle-minutes 15] [--tls-cert PEM --tls-key PEM]
    govgw web clerks add --data-dir WEB --username U --caller CALLER

The hall's API key stays on the web server, in a file only its owner may read.
A new clerk gets a one-time password (the last word printed) and sets their
own at the first sign-in.
"""

from __future__ import annotations

import argparse
import logging
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def read_api_key(path: Path) -> str:
    """The hall's API key; refused when the file is readable by group or others."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(
            f"api-key-file: {path} is readable by others (mode {mode:04o}); chmod 600 it first"
        )
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"api-key-file: {path} is empty")
    return key


def _host_port(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{what}: HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def cmd_web(args: argparse.Namespace) -> int:
    import uvicorn

    from web.app import WebSettings, create_app

    missing = [
        f"--{n.replace('_', '-')}"
        for n in ("data_dir", "gateway", "api_key_file")
        if not getattr(args, n)
    ]
    if missing:
        raise ValueError(f"govgw web: give {', '.join(missing)}")
    _host_port(args.gateway, "gateway")
    host, port = _host_port(args.listen, "listen")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("tls: give both --tls-cert and --tls-key")
    settings = WebSettings(
        data_dir=args.data_dir,
        gateway=args.gateway,
        api_key=read_api_key(args.api_key_file),
        idle_s=args.idle_minutes * 60,
        tls=bool(args.tls_cert),
    )
    logging.getLogger("govgw.web").setLevel(logging.INFO)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        log_level="info",
        server_header=False,
        proxy_headers=False,
    )
    uvicorn.Server(config).run()
    return 0


def cmd_clerks_add(args: argparse.Namespace) -> int:
    from web.store import WebStore

    username, caller = args.username.strip(), args.caller.strip()
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise ValueError("username: 1 to 64 printable characters, no spaces")
    if not caller:
        raise ValueError("caller: the hall's counter caller id")
    store = WebStore(args.data_dir)
    try:
        one_time = store.add_clerk(username, caller)
    finally:
        store.close()
    # The one-time password is the last word: scripts take it with `awk '{print $NF}'`.
    print(f"clerk {username} added for caller {caller}; one-time password: {one_time}")
    return 0


def register(sub: Any, helpers: CliHelpers) -> None:
    sp = helpers.cmd(sub, "web", cmd_web, "serve the service counter's page (政务服务窗口)")
    sp.add_argument("--data-dir", type=Path, help="the web app's own directory (clerks, sessions)")
    sp.add_argument("--gateway", help="the gateway, HOST:PORT")
    sp.add_argument("--api-key-file", type=Path, help="the hall's counter API key (mode 0600)")
    sp.add_argument("--listen", default="127.0.0.1:8080")
    sp.add_argument("--idle-minutes", type=float, default=15.0, help="idle sessions end")
    sp.add_argument("--tls-cert", help="serve HTTPS (cookies then Secure)")
    sp.add_argument("--tls-key")
    web_sub = sp.add_subparsers(dest="web_sub")
    clerks = web_sub.add_parser("clerks", help="clerk accounts").add_subparsers(
        dest="clerks_sub", required=True
    )
    sp = helpers.cmd(clerks, "add", cmd_clerks_add, "add a clerk; prints a one-time password")
    sp.add_argument(
        "--data-dir", type=Path, required=True, help="the web app's directory (as `govgw web`'s)"
    )
    sp.add_argument("--username", required=True)
    sp.add_argument("--caller", required=True, help="the hall's counter caller id")


__all__ = ["register"]
