"""The optional parts of Tressel (setup.py's extras), checked before the work that needs them.

`require_extra` looks modules up without importing them (cheap, nothing runs), so a command can
say what to install before it loads a model or converts a photo, not after.
"""

from __future__ import annotations

import importlib.util

from tressel.errors import ConfigError


def require_extra(extra: str, modules: dict[str, str], needed_for: str, note: str = "") -> None:
    """Raise a ConfigError naming the missing packages and `pip install 'tressel[extra]'` (then
    `note`) when any of `modules` (import name -> the package that installs it) cannot be
    found."""
    missing = dict.fromkeys(package for module, package in modules.items()
                            if importlib.util.find_spec(module) is None)
    if missing:
        raise ConfigError(f"{needed_for} needs {', '.join(missing)}, not installed here: "
                          f"pip install 'tressel[{extra}]'{note}")
