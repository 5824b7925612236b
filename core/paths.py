"""Per-user folders by platform, with the standard library only (`tressel.client` imports it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

# Linux base folder for each kind: (XDG variable, default below the home folder).
_XDG = {
    "data": ("XDG_DATA_HOME", (".local", "share")),
    "state": ("XDG_STATE_HOME", (".local", "state")),
}


def user_dir(kind: Literal["data", "state"], *parts: str, env: str | None = None,
             app: str = "tressel") -> Path:
    """The per-user folder `<base>/<app>/<parts...>` for `kind`; nothing is created.

    `$env` (when given and set) overrides the whole path. Windows uses `%LOCALAPPDATA%`, macOS
    `~/Library/Application Support`, Linux `$XDG_DATA_HOME` (`~/.local/share`) for "data" and
    `$XDG_STATE_HOME` (`~/.local/state`) for "state". `app` names the folder on Windows and macOS;
    Linux always uses lowercase `tressel`, as XDG folders are by convention.
    """
    if env:
        override = os.environ.get(env)
        if override:
            return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / app
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support" / app
    else:
        variable, default = _XDG[kind]
        base = Path(os.environ.get(variable) or home.joinpath(*default)) / "tressel"
    return base.joinpath(*parts)
