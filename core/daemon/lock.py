"""The single-instance lock: an OS file lock that the kernel releases when the daemon dies.

Standard library only, so `tressel daemon stop/status` can test it without loading the server.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Any

LOCK_FILE = "daemon.lock"


def acquire(path: Path, wait: float = 0.0) -> IO[Any] | None:
    """Hold an exclusive lock on `path` until the handle is closed; None if another holds it.

    `wait` retries for that many seconds: `is_held` probes take the lock for an instant, and
    a daemon starting at that instant must not mistake a probe for another daemon.
    """
    deadline = time.monotonic() + wait
    while True:
        handle = _try_lock(path)
        if handle is not None or time.monotonic() >= deadline:
            return handle
        time.sleep(0.02)


def _try_lock(path: Path) -> IO[Any] | None:
    # Created 0600: the state folder and everything in it are the user's alone.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    handle = os.fdopen(fd, "a+")  # held open for the life of the daemon
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
    try:
        handle = _try_lock(path)
    except OSError:  # cannot open it (permissions): assume a daemon owns the folder
        return True
    if handle is None:
        return True
    handle.close()
    return False
