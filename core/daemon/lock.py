"""The single-instance lock: an OS file lock that the kernel releases when the daemon dies.

Standard library only, so `tressel daemon stop/status` can test it without loading the server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

LOCK_FILE = "daemon.lock"


def acquire(path: Path) -> IO[Any] | None:
    """Hold an exclusive lock on `path` until the handle is closed; None if another holds it."""
    handle = open(path, "a+")  # noqa: SIM115 - held open for the life of the daemon
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def is_held(state_dir: Path) -> bool:
    """True while a daemon process (even a hung one) owns `state_dir`."""
    path = state_dir / LOCK_FILE
    if not path.exists():
        return False
    handle = acquire(path)
    if handle is None:
        return True
    handle.close()
    return False
