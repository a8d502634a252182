"""Progress of a long command: a bar on a terminal, plain lines otherwise, nothing for --json.

The gateway's long operations (pool import, key rotation, audit verification,
index rebuild) take a `progress(n)` callback counting rows or bytes done; the
command hands them a `Progress`. On a terminal it is a tqdm bar on stderr;
when stderr is not a terminal (a pipe, a log, CI) it writes one plain line
every `every_s` seconds and one at the end, so a log shows the command is
alive without a bar's control characters; under `--json` it says nothing, so
stdout and stderr stay machine-readable.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm


class Progress:
    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        unit: str = "rows",
        quiet: bool = False,
        stream: TextIO | None = None,
        every_s: float = 5.0,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.quiet, self.every_s = quiet, every_s
        self.done = 0
        self._started = self._last = time.monotonic()
        self._bar: Any = None
        if not quiet and self.stream.isatty():
            scale = unit == "bytes"
            self._bar = tqdm(
                total=total, desc=label, unit="B" if scale else f" {unit}", unit_scale=scale,
                unit_divisor=1024 if scale else 1000, file=self.stream, dynamic_ncols=True,
            )  # fmt: skip

    def __call__(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if not self.quiet and now - self._last >= self.every_s:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        rate = self.done / max(now - self._started, 1e-9)
        of = f" of {self.total:,}" if self.total is not None else ""
        pct = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        print(f"{self.label}: {self.done:,}{of} {self.unit}{pct}, {rate:,.0f} {self.unit}/s",
              file=self.stream, flush=True)  # fmt: skip

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif not self.quiet and self.done:
            self._line(time.monotonic())
            self.quiet = True  # closed: say it once

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
