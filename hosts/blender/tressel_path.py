"""Find Tressel's standard-library client for Blender's Python: install config, then env vars.

`tressel hosts install blender` copies this extension into Blender's user extensions repository
and writes `tressel_host.json` beside this file (never into the source folder):

    {"hosts_python": "<folder holding only the tressel package>",
     "daemon_command": "<command that starts this environment's daemon>", ...}

`$TRESSEL_HOSTS_PYTHON` (the folder holding `tressel`) and `$TRESSEL_DAEMON_COMMAND` override
the file, for studios that set the environment of every Blender they launch. No bpy here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

CONFIG_NAME = "tressel_host.json"
ENV_HOSTS_PYTHON = "TRESSEL_HOSTS_PYTHON"
ENV_DAEMON_COMMAND = "TRESSEL_DAEMON_COMMAND"
INSTALL_HINT = "run `tressel hosts install blender` in Tressel's environment, then restart Blender"

_added: list[str] = []  # sys.path entries this extension added, removed again on unregister


def read_config(folder: Path | None = None) -> dict:
    """The install config beside this file; empty when there is none or it is unreadable."""
    path = (folder or Path(__file__).resolve().parent) / CONFIG_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def setup() -> str | None:
    """Make `import tressel.hosting` work and tell the client how to start the daemon.

    Returns None when Tressel is importable, else a message saying what to do.
    """
    config = read_config()
    folder = os.environ.get(ENV_HOSTS_PYTHON) or config.get("hosts_python") or ""
    if folder and folder not in sys.path:
        sys.path.insert(0, folder)
        _added.append(folder)
    # Inside Blender sys.executable is Blender itself: the client must be told the command.
    command = config.get("daemon_command")
    if command and not os.environ.get(ENV_DAEMON_COMMAND):
        os.environ[ENV_DAEMON_COMMAND] = command
    try:
        import tressel.hosting  # noqa: F401
    except ImportError as exc:
        where = folder or "(no folder configured)"
        return f"Tressel's client was not found in {where} ({exc}): {INSTALL_HINT}"
    return None


def teardown() -> None:
    for folder in _added:
        if folder in sys.path:
            sys.path.remove(folder)
    _added.clear()
