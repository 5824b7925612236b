"""Progress reporting and cancellation shared by every slow stage (pipeline, training, batch).

A stage reports `progress(phase, step, total)` and calls `check_cancel(cancel)` between steps.
`cancel` is anything with `is_set()` (a `threading.Event` works), or None.
"""

from __future__ import annotations

from typing import Callable, Protocol

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
