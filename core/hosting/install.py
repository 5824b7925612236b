"""Install the DCC hosts where Maya, Houdini and Blender look for them (`tressel hosts ...`).

Runs in Tressel's own environment, never inside a DCC. Each host module
(`tressel.hosting.install_<host>`) defines one `HostInstaller`; what they share is here:
where the host code is (inside the wheel, or the checkout's `hosts/`), the small folder that
gives a DCC's Python `import tressel.client` without Tressel's heavy dependencies, and the
command that starts this environment's daemon.
"""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import tressel
from tressel.client import default_daemon_command
from tressel.errors import TresselError
from tressel.paths import user_dir

# Host name -> module defining `INSTALLER`; `tressel hosts` lists them in this order.
HOST_MODULES = {
    "maya": "tressel.hosting.install_maya",
    "houdini": "tressel.hosting.install_houdini",
    "blender": "tressel.hosting.install_blender",
}
ENV_HOSTS_PYTHON = "TRESSEL_HOSTS_PYTHON"


@dataclass(frozen=True)
class Installation:
    """One installed host: the file the DCC reads, and the host code it points at."""

    host: str
    path: Path  # the .mod, package JSON or extension folder written where the DCC looks
    source: Path  # the host folder it loads
    valid: bool = True  # False when the source it points at no longer exists
    note: str = ""


class HostInstaller(Protocol):
    name: str

    def default_dir(self) -> Path:
        """Where the DCC looks for this kind of file for the current user on this platform."""

    def install(self, target_dir: Path | None = None) -> Installation: ...

    def uninstall(self, target_dir: Path | None = None) -> list[Path]:
        """Remove what `install` wrote; returns the paths removed (none: nothing was there)."""

    def find(self, target_dir: Path | None = None) -> list[Installation]:
        """What is installed in `target_dir` (default: `default_dir()`)."""


def installer(host: str) -> HostInstaller:
    if host not in HOST_MODULES:
        raise TresselError(f"unknown host {host!r}: choose one of {', '.join(HOST_MODULES)}")
    try:
        module = importlib.import_module(HOST_MODULES[host])
    except ModuleNotFoundError as exc:
        raise TresselError(f"this Tressel has no {host} host installer ({exc})") from exc
    return module.INSTALLER


def hosts_root() -> Path:
    """The folder holding `maya/`, `houdini/`, `blender/`, ...: in the wheel, else the checkout."""
    package = Path(tressel.__file__).resolve().parent
    for candidate in (package / "data" / "hosts", package.parent / "hosts"):
        if candidate.is_dir():
            return candidate
    raise TresselError(
        f"the DCC host files are missing from this Tressel installation ({package}): "
        "reinstall Tressel (`pip install --force-reinstall tressel`)"
    )


def host_source(host: str) -> Path:
    path = hosts_root() / host
    if not path.is_dir():
        raise TresselError(f"no {host} host files in {hosts_root()}: reinstall Tressel")
    return path


def hosts_python_dir() -> Path:
    """A folder holding only `tressel` (this installation's package), for a DCC's `sys.path`.

    A DCC must not see Tressel's virtual environment (its numpy would shadow the DCC's own), so
    hosts get this folder instead: `tressel` here is a link to the package (a copy of its
    Python files where links are not allowed), and the host imports only its standard-library
    modules (`tressel.client`, `tressel.hosting`). `$TRESSEL_HOSTS_PYTHON` overrides the place.
    """
    return user_dir("data", "hosts", "python", env=ENV_HOSTS_PYTHON)


def prepare_hosts_python() -> Path:
    """Create or refresh `hosts_python_dir()` so that it points at this installation."""
    folder = hosts_python_dir()
    folder.mkdir(parents=True, exist_ok=True)
    package = Path(tressel.__file__).resolve().parent
    link = folder / "tressel"
    staged = folder / f".tressel.tmp-{os.getpid()}"
    _remove(staged)
    try:
        staged.symlink_to(package, target_is_directory=True)
    except OSError:  # Windows without developer mode: copy the Python sources instead
        shutil.copytree(package, staged, ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", "data", "*.safetensors"))
    if link.is_symlink() or link.is_file():
        os.replace(staged, link)
    else:
        _remove(link)
        os.replace(staged, link)
    return folder


def daemon_command_line() -> str:
    """The command (a string for `TRESSEL_DAEMON_COMMAND`) that starts this environment's daemon."""
    argv = default_daemon_command()
    return subprocess.list2cmdline(argv) if os.name == "nt" else shlex.join(argv)


def remove_found(host: HostInstaller, target_dir: Path | None = None) -> list[Path]:
    """Remove each file `host.find(target_dir)` reports: the uninstall of a one-file host."""
    removed = []
    for item in host.find(target_dir):
        item.path.unlink(missing_ok=True)
        removed.append(item.path)
    return removed


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temp file and a rename: a DCC never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
