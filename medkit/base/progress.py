"""Progress on long loops: a tqdm bar on a terminal or in a notebook, a plain line every few seconds elsewhere.

A bar redraws about ten times a second; into a file or a CI log that is thousands of carriage-return
fragments. Where stderr is neither a terminal nor a notebook kernel's, `progress` prints one plain line
every `PLAIN_SECONDS` instead (`caching features: 12/40 (30%), 9 s`). `TQDM_DISABLE=1` (tqdm's own switch,
which `medkit --quiet` sets) hides both.
"""

import os
import sys
import time

__all__ = ["PLAIN_SECONDS", "progress", "draws_bars", "disabled"]

PLAIN_SECONDS = 5.0  # often enough to see a stalled job, rare enough to keep a log readable


def disabled() -> bool:
    """Return True when `TQDM_DISABLE` asks for no progress at all (any value but empty, 0 or false)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")


def draws_bars(stream=None) -> bool:
    """Return True where a bar can redraw in place: a terminal, or a Jupyter kernel (tqdm draws a widget there)."""
    ipython = sys.modules.get("IPython")  # only a session that already runs IPython can be a kernel
    if ipython is not None and getattr(ipython.get_ipython(), "kernel", None) is not None:
        return True
    isatty = getattr(stream or sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _PlainLines:
    """Iterate `iterable`, printing `desc: done/total (pct), elapsed` on stderr every `every` seconds."""

    def __init__(self, iterable, desc: str, total: int | None, every: float):
        self.iterable, self.desc, self.every = iterable, desc, every
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)

    def __len__(self):
        return len(self.iterable)

    def _line(self, done: int, seconds: float) -> str:
        if self.total:
            return f"{self.desc}: {done}/{self.total} ({100 * done / self.total:.0f}%), {seconds:.0f} s"
        return f"{self.desc}: {done}, {seconds:.0f} s"

    def __iter__(self):
        start = last = time.monotonic()
        done, printed = 0, False
        for item in self.iterable:
            yield item
            done += 1
            now = time.monotonic()
            if now - last >= self.every:
                last, printed = now, True
                print(self._line(done, now - start), file=sys.stderr, flush=True)
        if printed:  # a loop that reported along the way also says it finished
            print(self._line(done, time.monotonic() - start), file=sys.stderr, flush=True)


def progress(iterable, desc: str, *, enabled: bool = True, total: int | None = None, leave: bool = False,
             every: float = PLAIN_SECONDS):
    """Return `iterable` wrapped in a bar (terminal, notebook) or plain lines every `every` s (files, CI logs)."""
    if not enabled or disabled():
        return iterable
    if draws_bars():
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, leave=leave)
    return _PlainLines(iterable, desc, total, every)
