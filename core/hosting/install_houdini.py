"""Install the Houdini host: a package JSON in `$HOUDINI_USER_PREF_DIR/packages` (`tressel hosts`).

The package file is the template `hosts/houdini/package.json` with this installation's paths
filled in: it sets `TRESSEL_HOUDINI` (the host folder, also put on `HOUDINI_PATH` through
`hpath` for the shelf), `TRESSEL_DAEMON_COMMAND` (how Houdini starts this environment's daemon),
`TRESSEL_HOUDINI_USER` (the per-user folder that holds the node's HDA once it is built) and
prepends `hosts_python_dir()` and the host's `python/` folder to `PYTHONPATH`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tressel.errors import TresselError
from tressel.hosting.install import (
    Installation,
    daemon_command_line,
    host_source,
    hosts_python_dir,
    remove_found,
    write_text_atomic,
)
from tressel.paths import user_dir

PACKAGE_FILE = "tressel.json"
TEMPLATE = "package.json"
ENV_USER_DIR = "TRESSEL_HOUDINI_USER"  # also read by the host (tressel_houdini.nodetype)


def houdini_user_dir() -> Path:
    """Where the host keeps what it builds inside Houdini (the node's HDA): a Tressel folder."""
    return user_dir("data", "houdini", env=ENV_USER_DIR)


def fill_template(value: Any, fields: dict[str, str]) -> Any:
    """`@NAME@` placeholders in every string of a JSON value replaced; the structure is kept."""
    if isinstance(value, str):
        for name, text in fields.items():
            value = value.replace(f"@{name}@", text)
        return value
    if isinstance(value, list):
        return [fill_template(item, fields) for item in value]
    if isinstance(value, dict):
        return {key: fill_template(item, fields) for key, item in value.items()}
    return value


def _env_value(package: dict[str, Any], name: str) -> Any:
    for entry in package.get("env", []):
        if isinstance(entry, dict) and name in entry:
            return entry[name]
    return None


@dataclass
class HoudiniInstaller:
    """`tressel hosts install houdini`: one package file, replaced on every install."""

    name: str = "houdini"
    platform: str = field(default_factory=lambda: sys.platform)
    home: Path | None = None  # tests point this elsewhere; default: the user's home

    # -- where Houdini looks -------------------------------------------------------------------

    def _home(self) -> Path:
        return self.home if self.home is not None else Path.home()

    def _pref_parent(self) -> tuple[Path, str]:
        """The folder holding per-version preference folders, and their name prefix."""
        home = self._home()
        if self.platform == "darwin":
            return home / "Library" / "Preferences" / "houdini", ""
        if self.platform == "win32":
            return home / "Documents", "houdini"
        return home, "houdini"

    @staticmethod
    def _version_from_env() -> str | None:
        explicit = os.environ.get("TRESSEL_HOUDINI_VERSION")
        if explicit:
            return explicit
        major, minor = (os.environ.get("HOUDINI_MAJOR_RELEASE"),
                        os.environ.get("HOUDINI_MINOR_RELEASE"))
        return f"{major}.{minor}" if major and minor else None

    def pref_dirs(self) -> list[Path]:
        """The existing per-version preference folders, newest Houdini version first."""
        parent, prefix = self._pref_parent()
        pattern = re.compile(rf"^{prefix}(\d+)\.(\d+)$")
        found = []
        if parent.is_dir():
            for child in parent.iterdir():
                match = pattern.match(child.name)
                if match and child.is_dir():
                    found.append(((int(match[1]), int(match[2])), child))
        return [path for _, path in sorted(found, reverse=True)]

    def pref_dir(self) -> Path | None:
        """`$HOUDINI_USER_PREF_DIR`, else the folder of the Houdini version named by the
        environment, else the newest existing one; None when there is none."""
        version = self._version_from_env()
        configured = os.environ.get("HOUDINI_USER_PREF_DIR")
        if configured:
            if "__HVER__" not in configured:
                return Path(configured).expanduser()
            if version:
                return Path(configured.replace("__HVER__", version)).expanduser()
        if version:
            parent, prefix = self._pref_parent()
            return parent / f"{prefix}{version}"
        newest = self.pref_dirs()
        return newest[0] if newest else None

    def default_dir(self) -> Path:
        pref = self.pref_dir()
        if pref is None:  # shown by `tressel hosts status`; install refuses it (see _target)
            parent, prefix = self._pref_parent()
            return parent / f"{prefix}XX.Y" / "packages"
        return pref / "packages"

    def _target(self, target_dir: Path | None) -> Path:
        if target_dir is not None:
            return Path(target_dir).expanduser()
        if self.pref_dir() is None:
            parent, prefix = self._pref_parent()
            raise TresselError(
                f"no Houdini preferences folder found (looked for {parent / (prefix + 'XX.Y')}): "
                "start Houdini once so it creates it, set HOUDINI_USER_PREF_DIR or "
                "TRESSEL_HOUDINI_VERSION=20.5, or pass --dir PREFS/packages"
            )
        return self.default_dir()

    # -- the package file ----------------------------------------------------------------------

    def package(self) -> dict[str, Any]:
        """The package JSON for this installation (the host's template, filled in)."""
        source = host_source("houdini")
        template = json.loads((source / TEMPLATE).read_text(encoding="utf-8"))
        return fill_template(template, {
            "HOST": source.as_posix(),
            "HOSTS_PYTHON": hosts_python_dir().as_posix(),
            "DAEMON_COMMAND": daemon_command_line(),
            "USER_DIR": houdini_user_dir().as_posix(),
        })

    def install(self, target_dir: Path | None = None) -> Installation:
        target = self._target(target_dir)
        package = self.package()
        path = write_text_atomic(target / PACKAGE_FILE, json.dumps(package, indent=4) + "\n")
        source = Path(_env_value(package, "TRESSEL_HOUDINI"))
        return Installation(
            host=self.name, path=path, source=source,
            note=("restart Houdini; then the Tressel shelf's Groom tool (or Tab > Tressel Groom "
                  "in a SOP network, once the tool has built the node) brings a photo in"),
        )

    def uninstall(self, target_dir: Path | None = None) -> list[Path]:
        return remove_found(self, target_dir)

    def find(self, target_dir: Path | None = None) -> list[Installation]:
        folder = Path(target_dir).expanduser() if target_dir is not None else (
            self.default_dir() if self.pref_dir() is not None else None)
        path = folder / PACKAGE_FILE if folder is not None else None
        if path is None or not path.is_file():
            return []
        try:
            package = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return [Installation(self.name, path, Path(), valid=False,
                                 note=f"unreadable package file ({exc}): reinstall")]
        source = _env_value(package, "TRESSEL_HOUDINI") if isinstance(package, dict) else None
        if not isinstance(source, str):
            return []  # another tool's tressel.json: not ours to report or remove
        source_path = Path(source)
        return [Installation(self.name, path, source_path,
                             valid=(source_path / "python" / "tressel_houdini").is_dir())]


INSTALLER = HoudiniInstaller()
