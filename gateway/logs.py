"""How the gateway's log lines are written: the one place logging is configured.

`--log-format text` (the default) writes what a person reads in a terminal;
`--log-format json` writes one JSON object per line for a log pipeline:

    {"timestamp": "...+00:00", "level": "INFO", "logger": "govgw.pipeline",
     "message": "request req_... caller=... outcome=PERMISSION_DENIED ...",
     "request_id": "req_...", "caller": "county-civil-affairs", "action": "verify.identity",
     "dataset": "...", "code": "PERMISSION_DENIED", "reason": "...", "latency_ms": 1.234}

A call line's fields are the ones the pipeline passes (`CALL_FIELDS`): ids and
codes the gateway itself issues, never a subject key, a name, an ID number, a
phone number or a purpose's text. Under `--workers N` every line carries its
worker's tag (`w0` in text, `"worker": 0` in JSON).
"""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

TEXT = "text"
JSON = "json"
FORMATS = (TEXT, JSON)
# The fields of the pipeline's one line per call, beside its message.
CALL_FIELDS = ("request_id", "caller", "action", "dataset", "code", "reason", "latency_ms")


def formatter(fmt: str = TEXT, worker: int | None = None) -> logging.Formatter:
    if fmt == JSON:
        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={} if worker is None else {"worker": worker},
            timestamp=True,  # ISO 8601 in UTC, from the record's creation time
            json_ensure_ascii=False,  # department names stay readable
        )
    if fmt != TEXT:
        raise ValueError(f"log-format: {fmt!r} is not one of {', '.join(FORMATS)}")
    tag = "" if worker is None else f" w{worker}"
    return logging.Formatter(f"%(asctime)s{tag} %(levelname)s %(name)s %(message)s")


def configure(level: int, fmt: str = TEXT, worker: int | None = None) -> None:
    """Send every log line to stderr in `fmt`, replacing what was set before."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt, worker))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Presidio announces every recognizer it loads at INFO; only its warnings matter here.
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)
