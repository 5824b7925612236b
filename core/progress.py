"""Progress reporting and cancellation shared by every slow stage (pipeline, training, batch).

A stage reports `progress(phase, step, total)` and calls `check_cancel(cancel)` between steps.
`cancel` is anything with `is_set()` (a `threading.Event` works), or None.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol

from tressel.errors import Cancelled

ProgressFn = Callable[[str, int, int], None]


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


def no_progress(phase: str, step: int, total: int) -> None:
    """The default progress callback: report nothing."""


def check_cancel(cancel: CancelFlag | None) -> None:
    """Raise `Cancelled` if the caller asked to stop."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("job cancelled")


class TqdmProgress:
    """A `ProgressFn` that draws one tqdm bar per phase on stderr (CLI commands use it).

    A new phase closes the previous bar; a changed total resizes the current one. tqdm is
    imported on first use so that importing this module stays light.
    """

    def __init__(self, label: str = "", enabled: bool = True, unit: str = "step",
                 leave: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self.unit = unit
        self.leave = leave
        self.bar: Any = None
        self.phase = ""

    def __call__(self, phase: str, step: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if phase != self.phase or self.bar is None:
            self.close()
            self.phase = phase
            desc = f"{self.label} {phase}" if self.label else phase
            self.bar = tqdm(total=max(total, 1), desc=desc, unit=self.unit, leave=self.leave,
                            file=sys.stderr, dynamic_ncols=True)
        if total != self.bar.total:
            self.bar.total = max(total, 1)
        self.bar.n = step
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.phase = ""
