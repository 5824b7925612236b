"""`tressel hosts install maya`: write the Maya module file (`tressel.mod`) where Maya finds it.

The module file points Maya at the host folder (`hosts/maya`: `scripts/` with `tressel_maya` and
its userSetup.py, `icons/`), appends `hosts_python_dir()` to PYTHONPATH (so Maya's Python gets
`tressel.client` without Tressel's heavy dependencies) and sets TRESSEL_DAEMON_COMMAND to this
environment's daemon. Standard library only; runs in Tressel's environment, never in Maya.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tressel
from tressel.hosting.install import (
    Installation,
    daemon_command_line,
    host_source,
    hosts_python_dir,
    remove_found,
    write_text_atomic,
)

MODULE_NAME = "Tressel"
MOD_FILE = "tressel.mod"


def user_modules_dir() -> Path:
    """Maya's per-user modules folder (read by every Maya version) on this platform."""
    home = Path.home()
    if sys.platform == "win32":
        return home / "Documents" / "maya" / "modules"
    if sys.platform == "darwin":
        return home / "Library" / "Preferences" / "Autodesk" / "maya" / "modules"
    return home / "maya" / "modules"


def module_text(source: Path, python_dir: Path, daemon_command: str) -> str:
    """The .mod file: one module line, then its environment, with no blank or comment lines
    (Maya stops reading a module's entries at a blank line)."""
    return "\n".join([
        f"+ {MODULE_NAME} {tressel.__version__} {source}",
        f"PYTHONPATH+={python_dir}",
        f"TRESSEL_DAEMON_COMMAND={daemon_command}",
    ]) + "\n"


def parse_module(path: Path) -> tuple[str, Path] | None:
    """(module name, module folder) of a .mod file's first module line, or None."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        if line.startswith("+ "):
            # "+ [CONDITION:value ...] Name Version Path": the path may hold spaces.
            tokens = [t for t in line[2:].split(" ") if t]
            while tokens and ":" in tokens[0] and tokens[0].split(":")[0].isupper():
                tokens.pop(0)
            if len(tokens) >= 3:
                return tokens[0], Path(" ".join(tokens[2:]))
            return None
    return None


class MayaInstaller:
    name = "maya"

    def default_dir(self) -> Path:
        return user_modules_dir()

    def install(self, target_dir: Path | None = None) -> Installation:
        folder = Path(target_dir or self.default_dir()).expanduser()
        source = host_source("maya").resolve()
        path = write_text_atomic(
            folder / MOD_FILE, module_text(source, hosts_python_dir(), daemon_command_line()))
        return Installation(
            host=self.name, path=path, source=source,
            note="restart Maya: the Tressel shelf appears (the result needs the mayaUsdPlugin, "
                 "which ships with Maya 2022 and later)",
        )

    def uninstall(self, target_dir: Path | None = None) -> list[Path]:
        return remove_found(self, target_dir)

    def find(self, target_dir: Path | None = None) -> list[Installation]:
        path = Path(target_dir or self.default_dir()).expanduser() / MOD_FILE
        parsed = parse_module(path) if path.is_file() else None
        if parsed is None or parsed[0] != MODULE_NAME:
            return []  # no file, or someone else's tressel.mod: not ours to report or remove
        source = parsed[1]
        valid = (source / "scripts" / "tressel_maya" / "__init__.py").is_file()
        return [Installation(host=self.name, path=path, source=source, valid=valid)]


INSTALLER = MayaInstaller()
