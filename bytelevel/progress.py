"""Progress bars that suit both a terminal and a log file.

On a terminal a bar is plain tqdm, redrawn in place as usual. Without one
(`make demo > log`, CI) tqdm would still redraw every 0.1 s by writing `\\r`,
and a log keeps every redraw on one long line: several kB per bar. There a bar
stays silent for its first `LOG_INTERVAL_S` seconds (short work leaves no trace,
as tqdm's own `delay` does), then writes one plain line (ASCII, ending in a
newline) at most every `LOG_INTERVAL_S` seconds, and one when it finishes. In a
Jupyter kernel tqdm's notebook widget is used unchanged.

Every progress bar in the library goes through `progress`, so this is the one
place that decides how they look.
"""
from __future__ import annotations

import sys
import warnings
from typing import Any, Iterable

LOG_INTERVAL_S = 30.0  # without a terminal: at most one line per bar this often


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _LineLog:
    """A file for tqdm that turns each in-place redraw (`\\r` + status) into one line of its own."""

    def __init__(self, stream: Any):
        self.stream = stream

    def write(self, text: str) -> None:
        for piece in text.split("\r"):
            line = piece.strip()
            if line:
                self.stream.write(line + "\n")

    def flush(self) -> None:
        getattr(self.stream, "flush", lambda: None)()


def progress(iterable: Iterable | None = None, **tqdm_kwargs: Any):
    """A tqdm bar over `iterable` (any tqdm keyword works); quiet and line-based without a terminal."""
    from tqdm.std import TqdmExperimentalWarning, tqdm

    with warnings.catch_warnings():  # as tqdm.auto does: the notebook-mode notice is for direct users
        warnings.simplefilter("ignore", category=TqdmExperimentalWarning)
        from tqdm.autonotebook import tqdm as notebook_tqdm

    if notebook_tqdm is not tqdm:  # running in a Jupyter kernel
        return notebook_tqdm(iterable, **tqdm_kwargs)
    stream = tqdm_kwargs.get("file") or sys.stderr
    if tqdm_kwargs.get("disable") is True or _is_terminal(stream):
        return tqdm(iterable, **tqdm_kwargs)
    interval = max(float(tqdm_kwargs.get("mininterval", 0.1)), LOG_INTERVAL_S)
    tqdm_kwargs.update(file=_LineLog(stream), mininterval=interval, dynamic_ncols=False)
    tqdm_kwargs["maxinterval"] = max(float(tqdm_kwargs.get("maxinterval", 10.0)), interval)
    tqdm_kwargs["delay"] = max(float(tqdm_kwargs.get("delay", 0.0)), interval)
    tqdm_kwargs.setdefault("ascii", True)
    tqdm_kwargs.setdefault("ncols", 100)
    return tqdm(iterable, **tqdm_kwargs)
