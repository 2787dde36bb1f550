"""A progress line for long loops over frames (the crop cache build, predict's frames).

On a terminal the line is rewritten in place (at most twice a second); in a log file (not a
terminal) a line is printed every 10%, so logs stay short. Safe to advance from several threads.
"""
from __future__ import annotations

import sys
import threading
import time


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
