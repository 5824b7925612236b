"""Install the system libraries some tests need (Qt, Xvfb, Mesa) with apt-get when missing.

The README's test command runs on a fresh machine: PySide6's wheels carry Qt but not the
system libraries Qt loads (libGL, libEGL, fontconfig, xkbcommon...), and the OpenGL tests need
an X server with Mesa's software rasteriser. Root on Debian/Ubuntu installs them; elsewhere
the caller gets a reason to skip with.
"""

from __future__ import annotations

import os
import shutil
import subprocess

# What `import PySide6.QtWidgets` loads from the system (ldd of the Qt libraries and the
# offscreen platform plugin).
QT_RUNTIME = ("libgl1", "libegl1", "libfontconfig1", "libfreetype6", "libglib2.0-0",
              "libdbus-1-3", "libx11-6", "libxkbcommon0")
# Qt's xcb platform on a private Xvfb, with Mesa's OpenGL (llvmpipe).
XVFB_OPENGL = ("xvfb", "xauth", "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1",
               "libgl1-mesa-dri", "libegl1")


def missing_packages(packages: tuple[str, ...]) -> list[str]:
    missing = []
    for package in packages:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                capture_output=True, text=True, check=False)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def ensure_apt_packages(packages: tuple[str, ...]) -> str | None:
    """None when every package is installed (installing the missing ones), else why not."""
    if not shutil.which("dpkg-query") or not shutil.which("apt-get"):
        return f"not a Debian/Ubuntu machine: install {' '.join(packages)} (or equivalents)"
    missing = missing_packages(packages)
    if not missing:
        return None
    if os.geteuid() != 0:
        return f"missing {' '.join(missing)} and not root: apt-get install them"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    subprocess.run(["apt-get", *lock, "update", "-q"], capture_output=True, env=env,
                   timeout=900, check=False)
    result = subprocess.run(["apt-get", *lock, "install", "-y", "-q", *missing],
                            capture_output=True, text=True, env=env, timeout=900, check=False)
    still = missing_packages(packages)
    if still:
        return f"apt-get install {' '.join(still)} failed: {result.stderr[-400:]}"
    return None
