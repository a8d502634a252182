"""A TEST DOUBLE OF THE OPA SERVER (not of govgw): OPA's REST Policy and Data API over HTTP.

No OPA binary can be installed on these machines, so the adapter under test
(gateway.policy.opa, which is ours) talks to this small HTTP server instead.
It speaks the part of OPA's REST API the adapter and opa-python-client use:

    GET    /health
    GET    /v1/policies                 {"result": [{"id", "raw"}, ...]}
    GET    /v1/policies/{id}            {"result": {"id", "raw"}}      404 if absent
    PUT    /v1/policies/{id}            text/plain Rego; 400 with OPA's error shape if it
                                        does not parse (nothing is rewritten or retried)
    DELETE /v1/policies/{id}
    PUT    /v1/data[/{path}]            JSON document; 204
    POST   /v1/data/{path}              {"input": ...} -> {"result": value} or {} if undefined

and decides with the embedded regorus engine, in the server's one thread
(a regorus Engine is bound to the thread that made it). `requests` records
every call so tests can see exactly what the adapter sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import regorus

from gateway.policy.engine import rego_error_text


def _jsonable(v: Any) -> Any:
    if isinstance(v, (set, frozenset)):
        return sorted((_jsonable(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


class OpaDouble:
    def __init__(self) -> None:
        self.policies: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_queries = False  # answer every query with a 500, as a broken OPA would
        self._engine: regorus.Engine | None = None
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, status: int, doc: Any | None = None) -> None:
                blob = b"" if doc is None else json.dumps(_jsonable(doc)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob)

            def _route(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                body = self._body()
                double.requests.append((method, path))
                status, doc = double.handle(method, path, body)
                self._send(status, doc)

            def do_GET(self) -> None:
                self._route("GET")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

            def do_PATCH(self) -> None:
                self._route("PATCH")

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=lambda: self.server.serve_forever(poll_interval=0.02), daemon=True
        )

    def __enter__(self) -> OpaDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # The engine must be dropped in the thread that made it: ask that thread to.
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(self.url + "/__drop", method="POST")).close()
        self.server.shutdown()
        self.server.server_close()

    # ----- OPA's behaviour ------------------------------------------------------------------

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if path == "/health":
            return 200, {}
        if path == "/__drop":  # not OPA's: lets the server thread drop its engine at exit
            self._engine = None
            return 200, {}
        if path.startswith("/v1/policies"):
            return self._policies(method, path.removeprefix("/v1/policies").strip("/"), body)
        if path.startswith("/v1/data"):
            return self._data(method, path.removeprefix("/v1/data").strip("/"), body)
        return 404, {"code": "resource_not_found", "message": "no such API"}

    def _policies(self, method: str, pid: str, body: bytes) -> tuple[int, Any]:
        if method == "GET" and not pid:
            return 200, {"result": [{"id": i, "raw": r} for i, r in sorted(self.policies.items())]}
        if method == "GET":
            if pid not in self.policies:
                return 404, {
                    "code": "resource_not_found",
                    "message": f"storage_not_found_error: policy id {pid!r}",
                }
            return 200, {"result": {"id": pid, "raw": self.policies[pid]}}
        if method == "DELETE":
            if self.policies.pop(pid, None) is None:
                return 404, {"code": "resource_not_found", "message": f"policy id {pid!r}"}
            self._engine = None
            return 200, {}
        if method == "PUT":
            candidate = {**self.policies, pid: body.decode("utf-8")}
            try:
                self._compile(candidate)
            except BaseException as e:  # a regorus parse error
                text = rego_error_text(e)
                return 400, {
                    "code": "invalid_parameter",
                    "message": "error(s) occurred while compiling module(s)",
                    "errors": [
                        {
                            "code": "rego_parse_error",
                            "message": text.splitlines()[-1] if text else "parse error",
                            "location": {"file": pid, "row": 0, "col": 0},
                        }
                    ],
                }
            self.policies = candidate
            self._engine = None
            return 200, {}
        return 405, {"code": "method_not_allowed", "message": method}

    def _data(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        keys = [k for k in path.split("/") if k]
        if method == "PUT":
            doc = json.loads(body or b"null")
            if not keys:
                if not isinstance(doc, dict):
                    return 400, {"code": "invalid_parameter", "message": "root must be an object"}
                self.data = doc
            else:
                node = self.data
                for k in keys[:-1]:
                    node = node.setdefault(k, {})
                node[keys[-1]] = doc
            self._engine = None
            return 204, None
        if method == "POST":
            if self.fail_queries:
                return 500, {"code": "internal_error", "message": "the double was told to fail"}
            doc = json.loads(body or b"{}")
            engine = self._engine or self._compile(self.policies)
            engine.set_input(doc.get("input", {}))
            try:
                value = engine.eval_rule("data." + ".".join(keys))
            except BaseException as e:
                return 500, {"code": "internal_error", "message": rego_error_text(e)[:300]}
            return 200, ({} if value is None else {"result": value})
        return 405, {"code": "method_not_allowed", "message": method}

    def _compile(self, policies: dict[str, str]) -> regorus.Engine:
        engine = regorus.Engine()
        for pid, source in sorted(policies.items()):
            engine.add_policy(pid, source)
        engine.add_data(self.data)
        self._engine = engine
        return engine
