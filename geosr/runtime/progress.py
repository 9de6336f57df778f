"""Progress that shows wherever a run is watched: a bar on a terminal or in a notebook, plain lines in a log.

A batch job's stderr (Slurm, cron, CI) is no terminal, and tqdm stays silent there. For the long
stages (the scene training's steps, the tiles) geosr then writes a line at a steady pace instead,
as GDAL's ``-progress`` does in scripts: every :data:`EVERY_FRACTION` of the work or every
:data:`EVERY_SECONDS`, whichever comes first, with the stage, the count, and the elapsed and
remaining time.
"""
from __future__ import annotations

import sys
import time

EVERY_FRACTION = 0.1
EVERY_SECONDS = 30.0


def counter(total: int, stage: str, unit: str, disable: bool | None = None, lines: bool = True, leave: bool = True):
    """Something with ``update(n=1)`` and ``close()`` counting ``total`` ``unit``s of ``stage``.

    ``disable``: True = nothing; False = a tqdm bar even off a terminal (``-v``); None = a bar on a
    terminal or in a notebook, else plain lines on stderr when ``lines`` (stages too short or too
    many for a log, such as each tile's own epochs, pass ``lines=False`` and stay silent there).
    ``leave``: the bar stays on the terminal when done (tqdm's ``leave``)."""
    if disable is True or total <= 0:
        return _Silent()
    if disable is None and not _interactive():
        return _Lines(total, stage, unit) if lines else _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=stage, unit=unit, leave=leave, disable=disable)


def _interactive() -> bool:
    """A person watches: stderr is a terminal, or this runs in a Jupyter kernel (tqdm draws a widget)."""
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass


class _Lines:
    """Plain progress lines on stderr: ``stage: 32/64 tiles (50%), 1 min 05 s elapsed, about 1 min 05 s left``."""

    def __init__(self, total: int, stage: str, unit: str):
        self.total, self.stage, self.unit = total, stage, unit
        self.done, self.start = 0, time.monotonic()
        self.last_time, self.last_fraction = self.start, 0.0
        self.postfix = ""

    def set_postfix(self, **values) -> None:
        """Shown at the end of the next line, as tqdm shows it beside the bar (the loss)."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        now = time.monotonic()
        if self.done == 0:
            self.first, self.first_done = now, n
        self.done = min(self.total, self.done + n)
        fraction = self.done / self.total
        if self.done == self.total or fraction - self.last_fraction >= EVERY_FRACTION - 1e-9 \
                or now - self.last_time >= EVERY_SECONDS:
            self.last_time, self.last_fraction = now, fraction
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        elapsed = now - self.start
        text = f"{self.stage}: {self.done}/{self.total} {self.unit}s ({100 * self.done / self.total:.0f}%), " \
               f"{duration(elapsed)} elapsed"
        if self.done < self.total and self.done >= 2:  # the pace since the first one: a wait before it (the
            # scene training before the first tile) says nothing of the rest
            pace = (now - self.first) / (self.done - self.first_done)
            text += f", about {duration(pace * (self.total - self.done))} left"
        return f"{text}; {self.postfix}" if self.postfix else text

    def close(self) -> None:
        pass


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
