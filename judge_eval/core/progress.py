"""Progress of long loops (judging, answering, training).

On an interactive terminal: a tqdm bar with counts and ETA. Anywhere else (a CI log, a file):
plain lines, so a recording is never minutes of silence: one when the loop starts, one every 10%
of the work or every 30 s, whichever comes later, with done/total and the elapsed time, and one
when it ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

#: A log line at most every this many seconds, and only after another tenth of the work.
LOG_EVERY_SECONDS = 30.0
LOG_EVERY_SHARE = 0.10


class LogProgress:
    """tqdm's ``update``/``close`` (and context manager) as plain log lines."""

    def __init__(self, total: int, desc: str, *, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.done = total, desc, 0
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._started = clock()
        self._last_time, self._last_done = self._started, 0
        self._closed = False
        self._write(f"{desc}: started, {total} to do")

    def _write(self, text: str) -> None:
        self._stream.write(f"[judge-eval] {text}\n")
        self._stream.flush()

    def _elapsed(self) -> str:
        return f"{self._clock() - self._started:.0f} s"

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self._clock()
        share = (self.done - self._last_done) / self.total if self.total else 1.0
        if self.done < self.total and share >= LOG_EVERY_SHARE and now - self._last_time >= LOG_EVERY_SECONDS:
            self._last_time, self._last_done = now, self.done
            self._write(f"{self.desc}: {self.done}/{self.total} ({self._elapsed()})")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write(f"{self.desc}: done, {self.done}/{self.total} in {self._elapsed()}")

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int, desc: str) -> Any:
    """A tqdm bar on an interactive terminal; log lines (``LogProgress``) otherwise."""
    if not sys.stderr.isatty():
        return LogProgress(total, desc)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", leave=False)
