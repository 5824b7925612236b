"""Install the Blender extension (`tressel hosts install blender`), or build it as a zip.

Blender 4.2+ loads extensions from repositories; the per-user one is
`<Blender config>/<version>/extensions/user_default` (Linux `~/.config/blender`, macOS
`~/Library/Application Support/Blender`, Windows `%APPDATA%\\Blender Foundation\\Blender`;
`$BLENDER_USER_EXTENSIONS` replaces `<...>/extensions`, as in Blender). The install is a copy of
`hosts/blender` as `user_default/tressel`, plus `tressel_host.json` in that copy (never in the
source folder): where the DCC-safe `tressel` package lives (`hosts_python_dir()`) and the
command that starts this environment's daemon. `build_zip` makes the same thing as a zip for
Blender's "Install from Disk".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path

import tressel
from tressel.errors import TresselError
from tressel.hosting.install import (
    Installation,
    daemon_command_line,
    host_source,
    hosts_python_dir,
)

EXTENSION_ID = "tressel"
CONFIG_NAME = "tressel_host.json"  # read by hosts/blender/tressel_path.py
REPOSITORY = "user_default"
ENABLE_NOTE = ("enable it in Blender: Edit > Preferences > Add-ons, search Tressel (then the "
               "Tressel tab of the 3D view sidebar, N)")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", CONFIG_NAME)


def blender_config_root() -> Path:
    """Blender's per-user configuration folder on this platform (holding one folder per version)."""
    home = Path.home()
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA") or str(home / "AppData" / "Roaming")
        return Path(appdata) / "Blender Foundation" / "Blender"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "Blender"
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "blender"


def newest_version_dir(root: Path | None = None) -> Path | None:
    """The newest `<root>/<major>.<minor>` folder (4.2 or later), or None when there is none."""
    root = root or blender_config_root()
    versions = []
    for child in root.iterdir() if root.is_dir() else ():
        match = re.fullmatch(r"(\d+)\.(\d+)", child.name)
        if match and child.is_dir() and (int(match[1]), int(match[2])) >= (4, 2):
            versions.append(((int(match[1]), int(match[2])), child))
    return max(versions)[1] if versions else None


def _config(source: Path) -> dict:
    return {
        "hosts_python": str(hosts_python_dir()),
        "daemon_command": daemon_command_line(),
        "source": str(source),
        "tressel_version": tressel.__version__,
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _is_ours(folder: Path) -> bool:
    manifest = folder / "blender_manifest.toml"
    try:
        text = manifest.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r'^id\s*=\s*"tressel"\s*$', text, re.MULTILINE) is not None


class BlenderInstaller:
    name = "blender"

    def default_dir(self) -> Path:
        """`user_default` of the newest Blender (4.2+) this user has run, else where 4.2's is."""
        override = os.environ.get("BLENDER_USER_EXTENSIONS")
        if override:
            return Path(override).expanduser() / REPOSITORY
        version = newest_version_dir() or blender_config_root() / "4.2"
        return version / "extensions" / REPOSITORY

    def _target(self, target_dir: Path | None) -> Path:
        if target_dir is not None:
            return Path(target_dir).expanduser()
        if not os.environ.get("BLENDER_USER_EXTENSIONS") and newest_version_dir() is None:
            raise TresselError(
                f"no Blender 4.2+ user folder in {blender_config_root()}: start Blender once "
                "(it creates it), or pass --dir with the extensions repository folder")
        return self.default_dir()

    def install(self, target_dir: Path | None = None) -> Installation:
        repository = self._target(target_dir)
        source = host_source("blender")
        dest = repository / EXTENSION_ID
        if dest.exists() and not _is_ours(dest):
            raise TresselError(f"{dest} exists and is not the Tressel extension: move it away "
                               "or install with --dir elsewhere")
        repository.mkdir(parents=True, exist_ok=True)
        staged = repository / f".{EXTENSION_ID}.tmp-{os.getpid()}"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(source, staged, ignore=_SKIP)
        (staged / CONFIG_NAME).write_text(json.dumps(_config(source), indent=2) + "\n",
                                          encoding="utf-8")
        # Swap in the new copy; the old one is removed only once the new one is complete.
        old = repository / f".{EXTENSION_ID}.old-{os.getpid()}"
        if dest.exists():
            os.replace(dest, old)
        os.replace(staged, dest)
        shutil.rmtree(old, ignore_errors=True)
        return Installation(host=self.name, path=dest, source=source, note=ENABLE_NOTE)

    def uninstall(self, target_dir: Path | None = None) -> list[Path]:
        dest = (Path(target_dir).expanduser() if target_dir else self.default_dir()) / EXTENSION_ID
        if not _is_ours(dest):
            return []
        shutil.rmtree(dest)
        return [dest]

    def find(self, target_dir: Path | None = None) -> list[Installation]:
        dest = (Path(target_dir).expanduser() if target_dir else self.default_dir()) / EXTENSION_ID
        if not _is_ours(dest):
            return []
        try:
            config = json.loads((dest / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        python_dir = Path(config.get("hosts_python") or hosts_python_dir())
        valid = (python_dir / "tressel" / "client.py").is_file()
        return [Installation(host=self.name, path=dest,
                             source=Path(config.get("source") or dest), valid=valid,
                             note="" if valid else f"{python_dir} has no tressel package")]

    def build_zip(self, out: Path) -> Path:
        """The extension as a zip for Blender's Install from Disk (with this machine's config)."""
        out = Path(out).expanduser()
        if out.suffix.lower() != ".zip":
            raise TresselError(f"{out.name}: the extension file must end in .zip")
        source = host_source("blender")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(source.rglob("*")):
                    relative = path.relative_to(source)
                    if path.is_file() and "__pycache__" not in relative.parts \
                            and path.suffix != ".pyc" and path.name != CONFIG_NAME:
                        archive.write(path, relative.as_posix())
                archive.writestr(CONFIG_NAME, json.dumps(_config(source), indent=2) + "\n")
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return out


INSTALLER = BlenderInstaller()
