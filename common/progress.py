"""A progress line for long loops over frames (the crop cache build, predict's frames).

On a terminal the line is rewritten in place (at most twice a second); in a log file (not a
terminal) a line is printed every 10%, so logs stay short. Safe to advance from several threads.
``plain_text_unless_terminal`` keeps colour codes out of log files (Keras' progress bar writes them
whatever its output is).
"""
from __future__ import annotations

import contextlib
import re
import sys
import threading
import time

# ANSI escape sequences (colours, bold) and backspaces: meaningful on a terminal only.
TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x08")


class PlainText:
    """A text stream that writes through to ``stream`` without ``TERMINAL_CODES``."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(TERMINAL_CODES.sub("", text))

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def plain_text_unless_terminal():
    """Within the block, stdout and stderr drop terminal codes unless they are a terminal."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (stream if stream.isatty() else PlainText(stream) for stream in saved)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


class ProgressBar:
    """``done/total (percent), rate/s, seconds left`` of ``total`` steps of ``what`` ("caching frames")."""

    def __init__(self, total: int, what: str, enabled: bool = True):
        self.total, self.what, self.done, self.enabled = total, what, 0, enabled
        self.started = self.last_print = time.perf_counter()
        self.interactive, self.next_fraction = sys.stdout.isatty(), 0.1
        self.lock = threading.Lock()

    def advance(self, count: int = 1) -> None:
        with self.lock:
            self.done += count
            now = time.perf_counter()
            fraction = self.done / max(self.total, 1)
            if not self.enabled:
                return
            if self.interactive and (now - self.last_print > 0.5 or self.done == self.total):
                self._print(now, end="\r")
            elif not self.interactive and fraction >= self.next_fraction:
                self.next_fraction = fraction + 0.1
                self._print(now, end="\n")

    def _print(self, now: float, end: str) -> None:
        self.last_print = now
        rate = self.done / max(now - self.started, 1e-9)
        eta = (self.total - self.done) / max(rate, 1e-9)
        print(f"  {self.what}: {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%), "
              f"{rate:.0f}/s, {eta:.0f} s left   ", end=end, flush=True)

    def finish(self) -> None:
        if self.interactive and self.enabled:
            print(flush=True)

    def summary(self) -> str:
        """``"<what>: <done> in <seconds> s (<rate>/s)"``: the line to print when the loop is over."""
        elapsed = time.perf_counter() - self.started
        return f"{self.what}: {self.done} in {elapsed:.1f} s ({self.done / max(elapsed, 1e-9):.1f}/s)"
